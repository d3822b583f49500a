"""Transactional emails (the asset link, its resend, the double opt-in confirmation, sales
alerts, the digest, the test send, spam-rate notices) read as real mail to content filters:
enough text, no images, and a text part that says the same as the HTML part."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from app import outbox
from app.db import db
from app.outbox import OutboxJob
from tests.campaigns.helpers import fill_and_submit, make_file_asset, make_form, make_page
from tests.helpers import make_user, outbox_files

# SpamAssassin's HTML_IMAGE_ONLY_* rules score HTML mail by how little text it carries, in
# bands of 400 characters; a message below the first band looks like an image with a caption.
MIN_TEXT = 400
WORD = re.compile(r"[a-z][a-z']{2,}")
URL = re.compile(r"https?://\S+")


class _Visible(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.images = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "head", "title"):
            self._skip += 1
        if tag == "img":
            self.images += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script", "head", "title"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible(html: str) -> tuple[str, int]:
    parser = _Visible()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split()), parser.images


def words(text: str) -> set[str]:
    return set(WORD.findall(URL.sub(" ", text.lower())))


def sent_message(subject_start: str):
    found = []
    for path in outbox_files():
        with path.open("rb") as fh:
            message = BytesParser(policy=policy.default).parse(fh)
        if str(message["Subject"]).startswith(subject_start):
            found.append(message)
    assert found, f"no email with a subject starting {subject_start!r}"
    return found[-1]


def run_outbox() -> None:
    db.session.expire_all()
    for row_id in db.session.scalars(sa.select(OutboxJob.id).where(OutboxJob.done_at.is_(None))
                                     .order_by(OutboxJob.id)).all():
        outbox.run(row_id)


def asset_email(client):
    make_page(form=make_form(), asset=make_file_asset())
    fill_and_submit(client, "guide", email="ann@example.com", first_name="Ann")
    run_outbox()
    return sent_message("Your download")


def confirmation_email(client):
    form = make_form()
    form.double_opt_in = True
    make_page(form=form, asset=make_file_asset())
    fill_and_submit(client, "guide", email="ann@example.com", first_name="Ann")
    run_outbox()
    return sent_message("Please confirm")


def alert_email(client):
    from app.sales import alerts
    from tests.app.sales.helpers import handed_off

    _, alert = handed_off()
    alerts.send(alert.id)
    return sent_message("New MQL for you")


def digest_email(client):
    from app.sales.digest import run_digest
    from tests.app.sales.helpers import handed_off

    handed_off()
    import time_machine

    from app.db import utcnow

    with time_machine.travel(utcnow().replace(hour=12)):
        run_digest()
    run_outbox()
    return sent_message("Your qualified leads")


def a_test_send(client):
    user = make_user("ops@example.com", "admin")
    outbox.add("app.mail.jobs.send_test_email", user.id, "ops@example.com")
    db.session.commit()
    run_outbox()
    return sent_message("Kindling test email")


def spam_notice(client):
    from nurture.tracking import jobs
    from tests.nurture.tracking.stories import make_send
    from tests.nurture.tracking.test_webhook import _spam_window

    make_user("mara@example.com", "marketer")
    make_send()
    _spam_window(2)
    jobs.check_spam_rate()
    run_outbox()
    return sent_message("Spam reports")


EMAILS = {"asset": asset_email, "confirmation": confirmation_email, "sales alert": alert_email,
          "digest": digest_email, "test send": a_test_send, "spam notice": spam_notice}


@pytest.mark.parametrize("kind", list(EMAILS))
def test_a_transactional_email_has_real_text_and_a_matching_text_part(app, client, kind):
    message = EMAILS[kind](client)
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    shown, images = visible(html)
    assert images == 0, f"{kind}: images in a transactional email"
    assert len(URL.sub("", shown)) >= MIN_TEXT, f"{kind}: only {len(shown)} characters: {shown}"
    html_words, text_words = words(shown), words(text)
    same = len(html_words & text_words) / len(html_words | text_words)
    assert same >= 0.9, (f"{kind}: the parts differ: only in HTML {html_words - text_words}, "
                         f"only in text {text_words - html_words}")

"""Download links: valid, expired (and a fresh one by email), tampered, external."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from app import outbox
from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.outbox import OutboxJob
from campaigns.jobs import send_asset_email
from campaigns.models import Asset
from campaigns.tokens import download_token
from forms.models import Submission
from tests.campaigns.helpers import (
    asset_emails,
    fill_and_submit,
    link_in,
    make_file_asset,
    make_form,
    make_page,
    parse,
)
from tests.helpers import csrf_from


def _submit(client, email="ann@example.com", **page_options):
    page = make_page(form=make_form(), **page_options)
    response = fill_and_submit(client, "guide", email=email, first_name="Ann")
    assert response.status_code == 303
    submission = db.session.scalars(sa.select(Submission)).one()
    return page, submission


def test_expired_link_offers_a_fresh_one_emailed_to_the_lead(app, client):
    page, submission = _submit(client, asset=make_file_asset(ttl=1))
    link = f"/d/{download_token(submission.id, page.asset_id)}"
    with client.get(link) as first:
        assert first.status_code == 200

    with time_machine.travel(utcnow() + timedelta(hours=2), tick=False):
        expired = client.get(link)
        html = expired.get_data(as_text=True)
        assert expired.status_code == 410
        assert "expired" in html and "Email me a fresh link" in html
        assert 'type="email"' not in html  # nobody types an address here
        sent = client.post(f"{link}/resend", data={"csrf_token": csrf_from(html),
                                                   "email": "attacker@example.com"})
        assert sent.status_code == 200 and "on its way" in sent.get_data(as_text=True)
        # Asking twice within the hour schedules one email.
        client.post(f"{link}/resend", data={"csrf_token": csrf_from(html)})
        (row,) = db.session.scalars(sa.select(OutboxJob).where(
            OutboxJob.job == "campaigns.jobs.resend_asset_email")).all()
        outbox.run(row.id)

    (email,) = asset_emails()
    text = email.read_text()
    assert "ann@example.com" in text and "attacker" not in text
    fresh = link_in(email)
    assert fresh != link
    with client.get(fresh) as response:
        assert response.status_code == 200 and response.data.startswith(b"%PDF-")


def _page_link(html: str) -> str | None:
    return "/d/" + html.split('href="/d/', 1)[1].split('"', 1)[0] if 'href="/d/' in html else None


def test_reloading_the_thank_you_page_never_extends_its_download_link(app, client):
    """The link on the thank-you page lives the asset's hours from the submit, however late
    the page is reloaded; after that the page says so (not the thank-you text, which speaks of a
    link ready to use), still thanks, and says how to get a new one."""
    make_page(form=make_form(), asset=make_file_asset(ttl=1))
    thanks_url = fill_and_submit(client, "guide", email="ann@example.com").headers["Location"]
    first = _page_link(client.get(thanks_url).get_data(as_text=True))
    assert first is not None

    with time_machine.travel(utcnow() + timedelta(minutes=50), tick=False):
        reloaded = client.get(thanks_url).get_data(as_text=True)
        late_link = _page_link(reloaded)
        assert late_link is not None and "Download The guide" in reloaded
    with time_machine.travel(utcnow() + timedelta(minutes=70), tick=False):
        for link in (first, late_link):
            with client.get(link) as expired:
                assert expired.status_code == 410, link  # an hour after the submit: gone
        page = client.get(thanks_url)
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "<h1>This download link has expired</h1>" in html
        assert _page_link(html) is None and "Download The guide" not in html
        assert "Thank you for your interest in The guide" in html
        assert 'href="/p/guide"' in html and "fill in the form again" in html


def test_resend_needs_the_csrf_token(app, client):
    page, submission = _submit(client, asset=make_file_asset(ttl=1))
    link = f"/d/{download_token(submission.id, page.asset_id)}"
    assert client.post(f"{link}/resend").status_code == 400


def test_tampered_or_foreign_tokens_are_refused(app, client):
    page, submission = _submit(client, asset=make_file_asset())
    token = download_token(submission.id, page.asset_id)
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                "garbage", token.replace(".", "x", 1)):
        response = client.get(f"/d/{bad}")
        assert response.status_code == 404
        assert "not valid" in response.get_data(as_text=True)
    # A token signed for another purpose (the thank-you page) is not a download token.
    from campaigns.tokens import thanks_token

    assert client.get(f"/d/{thanks_token(submission.id, page.asset_id)}").status_code == 404
    assert db.session.scalars(sa.select(Event).where(Event.type == "asset_downloaded")).all() == []


def test_external_asset_redirects_only_to_the_stored_url(app, client):
    asset = Asset(name="Webinar", external_url="https://videos.example.com/webinar?id=7")
    db.session.add(asset)
    db.session.commit()
    page, submission = _submit(client, asset=asset)
    link = f"/d/{download_token(submission.id, asset.id)}"
    response = client.get(link + "?next=https://evil.example.net/",
                          headers={"Referer": "https://evil.example.net/"})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://videos.example.com/webinar?id=7"
    lead = db.session.scalar(sa.select(Lead))
    (event,) = db.session.scalars(sa.select(Event).where(Event.type == "asset_downloaded")).all()
    assert event.lead_id == lead.id and event.campaign_id == page.campaign_id


def test_asset_email_skips_suppressed_leads_and_pages_without_assets(app, client):
    page, submission = _submit(client, asset=make_file_asset())
    lead = db.session.get(Lead, submission.lead_id)
    lead.unsubscribed_at = utcnow()
    db.session.commit()
    assert send_asset_email(submission.id) is None
    lead.unsubscribed_at = None
    lead.bounced_at = utcnow()
    db.session.commit()
    assert send_asset_email(submission.id) is None
    lead.bounced_at = None
    page.asset_id = None
    db.session.commit()
    assert send_asset_email(submission.id) is None
    assert send_asset_email(987654) is None
    assert asset_emails() == []


def test_asset_email_escapes_what_the_lead_typed(app, client):
    page, submission = _submit(client, asset=make_file_asset())
    lead = db.session.get(Lead, submission.lead_id)
    lead.first_name = "<b>Ann</b>"
    db.session.commit()
    assert send_asset_email(submission.id)
    assert send_asset_email(submission.id) is None  # once
    (email,) = asset_emails()
    from tests.campaigns.helpers import parse

    html = parse(email).get_body(preferencelist=("html",)).get_content()
    assert "&lt;b&gt;Ann&lt;/b&gt;" in html and "<b>Ann</b>" not in html
    (sent,) = db.session.scalars(sa.select(Event).where(Event.type == "asset_email_sent")).all()
    assert sent.lead_id == lead.id and sent.campaign_id == page.campaign_id


NAMES = ["Ann\r\nBcc: x@evil.example", "<script>alert(1)</script>",
         '=HYPERLINK("http://evil.example","click")']


@pytest.mark.parametrize("name", NAMES)
def test_what_the_lead_typed_as_a_name_never_reaches_a_mail_header(app, client, name):
    make_page(form=make_form(), asset=make_file_asset())
    assert fill_and_submit(client, "guide", email="ann@example.com",
                           first_name=name).status_code == 303
    submission = db.session.scalars(sa.select(Submission)).one()
    assert db.session.get(Lead, submission.lead_id).first_name == name  # stored as typed
    assert send_asset_email(submission.id)
    (path,) = asset_emails()
    message = parse(path)
    assert message.get_all("Bcc") is None
    headers = "\n".join(f"{k}: {v}" for k, v in message.items())
    for fragment in ("Ann", "Bcc", "evil", "script", "HYPERLINK"):
        assert fragment not in headers, headers
    assert message["To"].addresses[0].display_name == ""
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "<script>alert" not in html

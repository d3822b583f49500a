"""Double opt-in, as the person who signed up meets it: the email, the page, the button."""

import base64
import email
import re
from datetime import timedelta
from email import policy

import sqlalchemy as sa
import time_machine

from app.db import db, utcnow
from app.outbox import OutboxJob
from forms import jobs
from tests.forms.support import LISTENER, events, submissions
from tests.helpers import csrf_from, outbox_files


def _jobs() -> list[str]:
    db.session.expire_all()
    return [row.job for row in db.session.scalars(sa.select(OutboxJob).order_by(OutboxJob.id))]


def _sign_up(page, make_form, **settings):
    form = make_form(double_opt_in=True, **settings)
    assert page.post(form, {"email": "ann@example.com",
                            "first_name": "<b>Ann</b>"}).status_code == 201
    (submission,) = submissions()
    return form, submission


def _link() -> str:
    (eml,) = outbox_files()
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "&lt;b&gt;Ann&lt;/b&gt;" in html and "<b>Ann</b>" not in html  # escaped
    return re.search(r"http://kindling\.test(/confirm/\S+)", text).group(1)


def test_nothing_follows_until_the_person_confirms_with_the_button(page, make_form):
    _form, submission = _sign_up(page, make_form)
    assert submission.status == "pending_confirmation"
    assert _jobs() == ["forms.jobs.send_confirmation"]  # no asset email, no enrollment yet

    jobs.send_confirmation(submission.id)
    link = _link()
    shown = page.client.get(link)  # what a mail scanner does
    assert shown.status_code == 200 and "Confirm</button>" in shown.get_data(as_text=True)
    assert submissions()[0].status == "pending_confirmation" and LISTENER not in _jobs()

    confirmed = page.client.post(link, data={"csrf_token": csrf_from(shown.get_data(as_text=True))})
    assert "you are confirmed" in confirmed.get_data(as_text=True)
    submission = submissions()[0]
    assert submission.status == "accepted" and submission.confirmed_at is not None
    assert len(events("subscription_confirmed")) == 1
    assert _jobs().count(LISTENER) == 1

    again = page.client.post(link, data={"csrf_token": csrf_from(shown.get_data(as_text=True))})
    assert "Already confirmed" in again.get_data(as_text=True)
    assert _jobs().count(LISTENER) == 1 and len(events("subscription_confirmed")) == 1


def test_the_link_carries_no_email_address(page, make_form):
    _, submission = _sign_up(page, make_form)
    jobs.send_confirmation(submission.id)
    token = _link().rsplit("/", 1)[1]
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"ann@example.com" not in decoded and b"example" not in decoded


def test_a_tampered_link_shows_a_clear_page(page, make_form):
    _, submission = _sign_up(page, make_form)
    jobs.send_confirmation(submission.id)
    link = _link()
    response = page.client.get(link[:-3] + "abc")
    assert response.status_code == 400
    assert "This link is not valid" in response.get_data(as_text=True)


def test_an_expired_link_shows_a_clear_page_and_confirms_nothing(page, make_form):
    _, submission = _sign_up(page, make_form, confirmation_expiry_hours=24)
    jobs.send_confirmation(submission.id)
    link = _link()
    with time_machine.travel(utcnow() + timedelta(hours=25)):
        response = page.client.get(link)
        assert response.status_code == 410
        assert "expired" in response.get_data(as_text=True)
        assert jobs.expire_confirmations() == 1
        assert jobs.expire_confirmations() == 0  # idempotent
    assert submissions()[0].status == "expired"
    assert LISTENER not in _jobs()
    assert len(events("subscription_expired")) == 1


def test_the_name_a_lead_typed_never_reaches_a_header_of_the_confirmation(page, make_form):
    form = make_form(double_opt_in=True, fields=[("first_name", "First name", "text", False),
                                                 ("last_name", "Last name", "text", False)])
    page.post(form, {"email": "ann@example.com", "first_name": "Ann\r\nBcc: x@evil.example",
                     "last_name": '=HYPERLINK("http://evil.example")'})
    (submission,) = submissions()
    jobs.send_confirmation(submission.id)
    (eml,) = outbox_files()
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message.get_all("Bcc") is None
    headers = "\n".join(f"{k}: {v}" for k, v in message.items())
    assert "Ann" not in headers and "evil" not in headers and "HYPERLINK" not in headers
    assert message["To"].addresses[0].addr_spec == "ann@example.com"

"""Email steps against a fake SendGrid: provider failures are retried with back-off and exactly
one email arrives; permanent failures follow the sequence's policy."""

import time
from datetime import timedelta

import pytest
import time_machine

from app.db import db, utcnow
from nurture import engine
from nurture.enrollment import enroll
from tests.fakes.sendgrid_server import Reply
from tests.nurture.factories import (
    drain,
    email_step,
    enrollment_of,
    events,
    make_lead,
    make_sequence,
    sends,
    work,
)


@pytest.fixture
def app_config(app_config, fake_sendgrid):
    return {**app_config, "SENDGRID_API_KEY": "SG.test", "SENDGRID_API_HOST": fake_sendgrid.url}


def _start(lead, sequence) -> None:
    enrollment = enroll(lead.id, sequence.id, "test")
    db.session.commit()
    engine.kick([enrollment.id])
    drain()


def test_the_request_sendgrid_gets(app, fake_sendgrid):
    lead = make_lead(first_name="Bob\r\nBcc: x@evil.test")
    _start(lead, make_sequence())
    (request,) = fake_sendgrid.mail_sends
    body = request.json
    # the lead's typed name never reaches a header: the validated address alone
    assert body["personalizations"][0]["to"] == [{"email": "ann@example.com"}]
    assert "bcc" not in body["personalizations"][0]
    (send,) = sends()
    assert body["custom_args"] == {"send_id": str(send.id),
                                   "enrollment_id": str(send.enrollment_id)}
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["headers"]["List-Unsubscribe"].startswith("<http://kindling.test/u/")
    assert body["subject"] == "Hello Bob Bcc: x@evil.test"


def test_500_then_503_then_202_delivers_exactly_one_email(app, fake_sendgrid):
    fake_sendgrid.answer(Reply(500), Reply(503))
    lead = make_lead()
    start = utcnow()
    _start(lead, make_sequence())
    (send,) = sends()
    assert send.status == "retry" and "500" in send.error
    with time_machine.travel(start + timedelta(seconds=10)):
        work()  # too early: the back-off holds
    assert len(fake_sendgrid.mail_sends) == 1
    with time_machine.travel(start + timedelta(seconds=40)):
        work()
    assert sends()[0].status == "retry" and "503" in sends()[0].error
    with time_machine.travel(start + timedelta(seconds=40 + 35)):
        work()  # the back-off doubled (60 s after the second attempt): still holding
    assert len(fake_sendgrid.mail_sends) == 2
    with time_machine.travel(start + timedelta(seconds=40 + 65)):
        work()
    assert len(fake_sendgrid.mail_sends) == 3
    (send,) = sends()
    assert send.status == "sent" and send.attempts == 3 and send.provider_message_id
    assert len(events(lead.id, "email_sent")) == 1
    assert enrollment_of(lead.id).status == "finished"


def test_a_rate_limit_waits_until_the_reset_then_sends_once(app, fake_sendgrid):
    fake_sendgrid.answer(Reply(429, {"X-RateLimit-Reset": str(int(time.time()) + 120)}))
    lead = make_lead()
    start = utcnow()
    _start(lead, make_sequence())
    assert enrollment_of(lead.id).next_run_at >= start + timedelta(seconds=110)
    with time_machine.travel(start + timedelta(seconds=90)):
        work()
    assert len(fake_sendgrid.mail_sends) == 1
    with time_machine.travel(start + timedelta(seconds=125)):
        work()
    assert len(fake_sendgrid.mail_sends) == 2
    assert [s.status for s in sends()] == ["sent"]


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_a_proxys_retry_after_is_honoured_too(app, fake_sendgrid, form):
    """A proxy in front of the API answers 429 with Retry-After (seconds or an HTTP date)
    instead of SendGrid's X-RateLimit-Reset: the step waits that long, then sends once."""
    from email.utils import formatdate

    wait = "600" if form == "seconds" else formatdate(time.time() + 600, usegmt=True)
    fake_sendgrid.answer(Reply(429, {"Retry-After": wait}))
    lead = make_lead()
    start = utcnow()
    _start(lead, make_sequence())
    assert enrollment_of(lead.id).next_run_at >= start + timedelta(seconds=590)
    with time_machine.travel(start + timedelta(seconds=300)):
        work()  # the usual back-off has long passed, the provider's wait has not
    assert len(fake_sendgrid.mail_sends) == 1
    with time_machine.travel(start + timedelta(seconds=660)):  # margin: a slow first send
        work()
    assert len(fake_sendgrid.mail_sends) == 2
    assert [s.status for s in sends()] == ["sent"]


def test_a_permanent_failure_is_recorded_and_the_journey_continues(app, client, auth,
                                                                     fake_sendgrid):
    fake_sendgrid.answer(Reply(400, body=b'{"errors":[{"message":"bad address"}]}'))
    lead = make_lead()
    sequence = make_sequence(email_step(subject="One"), email_step(subject="Two"))
    _start(lead, sequence)
    first, second = sends()
    assert first.status == "failed" and "bad address" in first.error
    assert second.status == "sent"
    assert len(fake_sendgrid.mail_sends) == 2
    auth.login_as("marketer")  # the marketer sees the failure and its reason
    page = client.get(f"/admin/nurture/{sequence.id}").get_data(as_text=True)
    section = page.split("Emails that failed or wait for the provider")[1]
    assert "Email: One" in section and "bad address" in section and "failed" in section


def test_a_permanent_failure_can_stop_the_journey(app, fake_sendgrid):
    fake_sendgrid.answer(Reply(400, body=b"nope"))
    lead = make_lead()
    _start(lead, make_sequence(email_step(), email_step(), on_permanent_failure="stop"))
    assert [s.status for s in sends()] == ["failed"]
    enrollment = enrollment_of(lead.id)
    assert enrollment.status == "exited" and enrollment.exit_reason.startswith("email failed")

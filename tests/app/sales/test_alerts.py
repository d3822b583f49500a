"""Alert emails: persisted before sending, sent once, retried on provider failure, shown as
undelivered after the last try; lead-supplied text is escaped."""

from datetime import timedelta

import sqlalchemy as sa
from rq import Retry
from rq.job import Job

from app import outbox, queue
from app.db import db, utcnow
from app.outbox import OutboxJob
from app.sales import alerts
from app.sales.models import Alert
from app.worker import run_worker
from tests.app.sales.helpers import body, handed_off, mails
from tests.fakes.sendgrid_server import Reply

XSS = "<img src=x onerror=alert(1)>"


def _alert_row() -> OutboxJob:
    return db.session.scalar(sa.select(OutboxJob).where(OutboxJob.job == "app.sales.alerts.send"))


def test_provider_failures_are_retried_never_sent_twice_then_shown_undelivered(
        fake_sendgrid, app_config, make_app):
    app = make_app({**app_config, "SENDGRID_API_KEY": "SG.test",
                    "SENDGRID_API_HOST": fake_sendgrid.url, "SALES_ALERT_MAX_ATTEMPTS": 3})
    fake_sendgrid.answer(Reply(500), Reply(503), Reply(500))
    with app.app_context():
        lead, alert = handed_off()
        lead_id, alert_id = lead.id, alert.id
        assert alert.status == "pending"  # persisted before any send
        row_id = _alert_row().id
        outbox.dispatch_committed()

        run_worker(burst=True)  # first try, in a real worker: SendGrid answers 500
        rq_job = Job.fetch(f"outbox-{row_id}", connection=queue.connection())
        assert rq_job.get_status() == "scheduled"  # RQ retries it after a back-off
        alert = db.session.get(Alert, alert_id)
        assert (alert.status, alert.attempts) == ("retry", 1)

        assert isinstance(outbox.run(row_id), Retry)  # the retry: 503, still retryable
        assert outbox.run(row_id) == "undelivered"  # the last try: no more raising
        assert outbox.run(row_id) is None  # the outbox row is done
        assert alerts.send(alert_id) == "undelivered"
        assert len(fake_sendgrid.mail_sends) == 3

        db.session.expire_all()
        alert = db.session.get(Alert, alert_id)
        assert (alert.status, alert.attempts) == ("undelivered", 3)
        assert "500" in alert.last_error

        client = app.test_client()
        from tests.helpers import AuthActions

        AuthActions(client).login("sam@example.com")
        queue_page = client.get("/sales/queue").get_data(as_text=True)
        assert "undelivered" in queue_page
        lead_page = client.get(f"/admin/leads/{lead_id}").get_data(as_text=True)
        assert "undelivered" in lead_page and "after 3 attempt(s)" in lead_page


def test_a_sent_alert_is_never_sent_again(fake_sendgrid, app_config, make_app):
    app = make_app({**app_config, "SENDGRID_API_KEY": "SG.test",
                    "SENDGRID_API_HOST": fake_sendgrid.url})
    with app.app_context():
        _, alert = handed_off()
        assert alerts.send(alert.id) == "sent"
        assert alerts.send(alert.id) == "sent"  # RQ delivered the job twice
        assert len(fake_sendgrid.mail_sends) == 1
        payload = fake_sendgrid.mail_sends[0].json
        assert payload["personalizations"][0]["to"][0]["email"] == "sam@example.com"


def test_a_send_cut_short_by_a_dead_worker_is_not_repeated_blindly(app):
    from app.mail.ledger import MailDelivery

    _, alert = handed_off()
    # A worker claimed the alert's email an hour ago and never came back.
    db.session.add(MailDelivery(key=f"alert:{alert.id}", purpose="alert", status="claimed",
                                attempts=1, claimed_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    assert alerts.send(alert.id) == "unknown"
    assert mails() == []
    assert db.session.get(Alert, alert.id).undelivered


def test_a_permanent_refusal_is_undelivered_at_once(fake_sendgrid, app_config, make_app):
    app = make_app({**app_config, "SENDGRID_API_KEY": "SG.test",
                    "SENDGRID_API_HOST": fake_sendgrid.url})
    fake_sendgrid.answer(Reply(400, body=b'{"errors": ["bad"]}'))
    with app.app_context():
        _, alert = handed_off()
        assert alerts.send(alert.id) == "undelivered"
        assert len(fake_sendgrid.mail_sends) == 1


def test_lead_supplied_html_is_escaped_in_the_alert(app):
    _, alert = handed_off(first_name=XSS, company="<b>Evil</b> & Co")
    alerts.send(alert.id)
    (message,) = mails()
    html = body(message, "html")
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>Evil</b>" not in html
    assert "\n" not in message["Subject"]

"""Every email Kindling sends has a ledger row before it leaves. An email whose answer never came
(the provider may have it) is never sent again: it waits, shown on the Mail page, until
SendGrid's events settle it. Retryable refusals are retried; permanent ones are recorded."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from app import outbox
from app.db import db, utcnow
from app.leads.models import Event
from app.outbox import OutboxJob
from tests.campaigns.helpers import fill_and_submit, make_file_asset, make_form, make_page
from tests.fakes.sendgrid_server import Reply
from tests.helpers import AuthActions, make_user
from tests.nurture.tracking.stories import SendGridSigner


@pytest.fixture
def signer():
    return SendGridSigner()


@pytest.fixture
def app_config(app_config, fake_sendgrid, signer):
    return {**app_config, "SENDGRID_API_KEY": "SG.test", "SENDGRID_API_HOST": fake_sendgrid.url,
            "SENDGRID_TIMEOUT": 0.5, "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}


def run_outbox_like_rq(passes: int = 3) -> None:
    """Run every unfinished outbox row `passes` times, as RQ's retries would (without waiting
    for the back-off): a row that raises is simply run again on the next pass."""
    for _ in range(passes):
        db.session.expire_all()
        pending = db.session.scalars(sa.select(OutboxJob.id).where(
            OutboxJob.done_at.is_(None), OutboxJob.failed_at.is_(None))
            .order_by(OutboxJob.id)).all()
        for row_id in pending:
            try:
                outbox.run(row_id)
            except Exception:  # noqa: BLE001, S112 - RQ would schedule a retry; so do we
                continue


def _submit(client, *, double_opt_in: bool = False) -> None:
    form = make_form()
    form.double_opt_in = double_opt_in
    make_page(form=form, asset=make_file_asset())
    response = fill_and_submit(client, "guide", email="ann@example.com", first_name="Ann")
    assert response.status_code == 303


def queue_asset(client) -> tuple[str, str]:
    _submit(client)
    return "ann@example.com", "Your download: The guide"


def queue_resend(client) -> tuple[str, str]:
    from campaigns.models import Asset
    from forms.models import Submission

    _submit(client)
    run_outbox_like_rq(1)  # the first asset email goes out normally
    submission = db.session.scalars(sa.select(Submission)).one()
    asset_id = db.session.scalars(sa.select(Asset.id)).one()
    # What "Email me a fresh link" on an expired link schedules (campaigns.downloads.resend)
    key = f"asset-resend:{submission.id}:{asset_id}:2026120110"
    outbox.add("campaigns.jobs.resend_asset_email", submission.id, asset_id, key,
               queue_name="mail", dedupe_key=key)
    db.session.commit()
    return "ann@example.com", "Your download: The guide"


def queue_confirmation(client) -> tuple[str, str]:
    _submit(client, double_opt_in=True)
    return "ann@example.com", "Please confirm your subscription"


def queue_test_email(client) -> tuple[str, str]:
    user = make_user("ops@example.com", "admin")
    outbox.add("app.mail.jobs.send_test_email", user.id, "ops@example.com", queue_name="mail")
    db.session.commit()
    return "ops@example.com", "Kindling test email"


def queue_sales_alert(client) -> tuple[str, str]:
    from tests.app.sales.helpers import handed_off

    handed_off()
    return "sam@example.com", "New MQL for you: Dana Okafor"


def queue_spam_notice(client) -> tuple[str, str]:
    from nurture.tracking import jobs
    from tests.nurture.tracking.stories import make_send
    from tests.nurture.tracking.test_webhook import _spam_window

    make_user("mara@example.com", "marketer")
    make_send(sequence_status="active")
    _spam_window(2)  # 0.2 % of delivered email: a warning to marketers
    assert jobs.check_spam_rate() == "warning"
    return "mara@example.com", "Spam reports are above 0.1 %"


KINDS = {"asset": queue_asset, "resend": queue_resend, "confirmation": queue_confirmation,
         "test send": queue_test_email, "sales alert": queue_sales_alert,
         "spam notice": queue_spam_notice}


def to_address(recorded) -> str:
    return recorded.json["personalizations"][0]["to"][0]["email"]


def mail_page(client) -> str:
    return client.get("/admin/outbox/").get_data(as_text=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_email_whose_answer_never_came_is_not_sent_again_and_the_provider_settles_it(
        app, client, fake_sendgrid, signer, kind):
    address, subject = KINDS[kind](client)
    before = len(fake_sendgrid.mail_sends)
    fake_sendgrid.delay = 1.5  # SendGrid takes the email but answers after the client's timeout

    run_outbox_like_rq(3)  # the first try times out; RQ's retries must not send it again

    received = [r for r in fake_sendgrid.mail_sends[before:] if to_address(r) == address]
    assert len(received) == 1, f"{kind}: {len(received)} copies reached SendGrid"
    fake_sendgrid.delay = 0
    AuthActions(client).login_as("admin", email="boss@example.com")
    page = mail_page(client)
    assert subject in page and "unknown" in page  # shown, waiting for SendGrid's word

    # SendGrid's Event Webhook says it was delivered (matched by the custom arg).
    (request,) = received
    delivery_id = request.json["custom_args"]["delivery_id"]
    event = {"email": address, "timestamp": int(time.time()), "event": "delivered",
             "sg_event_id": f"d-{kind}", "sg_message_id": "abc.filter1", "delivery_id": delivery_id}
    assert signer.post(client, [event]).status_code == 200
    assert subject not in mail_page(client)  # settled: nothing needs attention any more
    run_outbox_like_rq(2)
    assert len([r for r in fake_sendgrid.mail_sends if to_address(r) == address]) \
        == len([r for r in fake_sendgrid.mail_sends[:before] if to_address(r) == address]) + 1


def test_a_settled_asset_email_appears_on_the_leads_timeline(app, client, fake_sendgrid, signer):
    queue_asset(client)
    fake_sendgrid.delay = 1.5
    run_outbox_like_rq(1)
    fake_sendgrid.delay = 0
    assert db.session.scalars(sa.select(Event).where(Event.type == "asset_email_sent")).all() == []
    (request,) = fake_sendgrid.mail_sends
    event = {"email": "ann@example.com", "timestamp": int(time.time()), "event": "processed",
             "sg_event_id": "p1", "delivery_id": request.json["custom_args"]["delivery_id"]}
    assert signer.post(client, [event]).status_code == 200
    db.session.expire_all()
    (sent,) = db.session.scalars(sa.select(Event).where(Event.type == "asset_email_sent")).all()
    assert sent.lead.email == "ann@example.com"


def test_a_provider_outage_is_retried_and_the_email_arrives_once(app, client, fake_sendgrid):
    fake_sendgrid.answer(Reply(500), Reply(503))
    queue_asset(client)
    run_outbox_like_rq(3)
    assert len(fake_sendgrid.mail_sends) == 3  # 500, 503, then accepted
    db.session.expire_all()
    assert len(db.session.scalars(sa.select(Event).where(
        Event.type == "asset_email_sent")).all()) == 1
    AuthActions(client).login_as("admin", email="boss@example.com")
    assert "Your download" not in mail_page(client)


def test_a_refused_email_is_not_retried_and_the_mail_page_says_why(app, client, fake_sendgrid):
    fake_sendgrid.answer(Reply(400, body=b'{"errors":[{"message":"Invalid to address"}]}'))
    queue_asset(client)
    run_outbox_like_rq(3)
    assert len(fake_sendgrid.mail_sends) == 1
    AuthActions(client).login_as("admin", email="boss@example.com")
    page = mail_page(client)
    assert "Your download: The guide" in page and "failed" in page
    assert "Invalid to address" in page


def test_a_worker_that_died_mid_send_leaves_an_unknown_email_never_resent(app, client,
                                                                          fake_sendgrid):
    from app.mail.ledger import MailDelivery

    queue_asset(client)
    from forms.models import Submission

    submission = db.session.scalars(sa.select(Submission)).one()
    # A worker claimed the email, posted it, and was killed before it heard back.
    db.session.add(MailDelivery(key=f"asset:{submission.id}", purpose="asset", status="claimed",
                                attempts=1, claimed_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    with time_machine.travel(utcnow() + timedelta(minutes=11)):  # the outbox lease ran out
        run_outbox_like_rq(2)
    assert fake_sendgrid.mail_sends == []
    AuthActions(client).login_as("admin", email="boss@example.com")
    assert "unknown" in mail_page(client)


def test_each_email_sent_is_logged_once_with_its_message_id_and_never_its_address(
        app, client, fake_sendgrid, caplog):
    queue_asset(client)
    with caplog.at_level(logging.INFO):
        run_outbox_like_rq(1)
    from forms.models import Submission

    submission = db.session.scalars(sa.select(Submission)).one()
    sent_lines = [r.getMessage() for r in caplog.records
                  if r.levelno == logging.INFO and f"asset:{submission.id}" in r.getMessage()]
    assert len(sent_lines) == 1, sent_lines
    (line,) = sent_lines
    (event,) = db.session.scalars(sa.select(Event).where(Event.type == "asset_email_sent")).all()
    assert event.data["message_id"] and event.data["message_id"] in line
    assert "ann@" not in line


@pytest.mark.parametrize("header", ["X-RateLimit-Reset", "Retry-After"])
def test_a_rate_limited_asset_email_is_retried_no_sooner_than_the_provider_asks(
        app, client, fake_sendgrid, header):
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    from app import queue
    from app.worker import run_worker

    value = str(int(time.time()) + 300) if header == "X-RateLimit-Reset" else "300"
    fake_sendgrid.answer(Reply(429, {header: value}))
    queue_asset(client)  # the submission's outbox row is on RQ after the request
    asked_at = time.time()
    run_worker(burst=True)  # a real worker: SendGrid answers 429
    assert len(fake_sendgrid.mail_sends) == 1
    (row,) = db.session.scalars(sa.select(OutboxJob).where(
        OutboxJob.job == "campaigns.jobs.send_asset_emails")).all()
    job = Job.fetch(row.rq_job_id, connection=queue.connection())
    assert job.get_status() == "scheduled"
    registry = ScheduledJobRegistry(job.origin, connection=queue.connection())
    assert registry.get_scheduled_time(job).timestamp() >= asked_at + 290


def test_the_demo_shows_emails_that_need_attention(app, client, runner):
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert runner.invoke(args=["seed-demo"]).exit_code == 0  # idempotent
    AuthActions(client).login("admin@example.com", "kindling-demo")
    page = mail_page(client)
    assert "Emails that need attention" in page
    assert "waiting for SendGrid's events" in page and "Does not contain a valid" in page

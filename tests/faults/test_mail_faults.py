"""Mail under provider faults, with real processes: a `flask scheduler` and RQ workers against
the test's database and Redis, and a loopback SendGrid that hangs past the client's timeout,
answers 429 with `X-RateLimit-Reset` or with `Retry-After`, 500 or 400, and a worker killed
with SIGKILL while a retry waits.

After each: every email reached the provider at most once per ledger row (the mail ledger's
and nurture's), and exactly once when the provider recovered; a hung one waited for SendGrid's
events instead of being sent again; no enrollment is left stuck."""

from __future__ import annotations

import time

import pytest
from rq.job import Job

from app import queue
from app.db import db
from tests.campaigns.helpers import fill_and_submit, make_file_asset, make_form, make_page
from tests.fakes.sendgrid_server import Reply, both, custom_arg, to
from tests.faults.invariants import all_hold
from tests.faults.mail_processes import (
    HANG,
    Fleet,
    configure,
    live_enrollments,
    mail_rows,
    nurture_sends,
    report_what_was_accepted,
    requests_by_row,
    settled,
)
from tests.nurture.factories import email_step, make_sequence
from tests.nurture.tracking.stories import SendGridSigner
from tests.nurture.worker_process import wait_for

pytestmark = pytest.mark.slow

WAIT = 4  # seconds a rate-limited provider asks for (longer than the first back-off)


@pytest.fixture
def signer():
    return SendGridSigner()


@pytest.fixture
def fleet(tmp_path):
    started = []

    def start(app_config) -> Fleet:
        started.append(Fleet(app_config, tmp_path))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def _asset(address: str):
    return both(to(address), custom_arg("delivery_id"))


def _step(address: str):
    return both(to(address), custom_arg("send_id"))


def test_every_provider_fault_costs_no_email_twice_and_loses_none(
        app_config, make_app, fake_sendgrid, signer, fleet):
    """Six visitors take the guide (an asset email each) and enter a one-email sequence; the
    provider fails differently for each, on both of their emails."""
    config = configure(app_config, fake_sendgrid, signer.public_key)
    app = make_app(config)
    reset_at = int(time.time()) + 6
    faults = {
        "ok@example.com": [],
        "hang@example.com": [Reply(delay=HANG)],  # accepted, but the answer comes too late
        "reset@example.com": [Reply(429, {"X-RateLimit-Reset": str(reset_at)})],
        "wait@example.com": [Reply(429, {"Retry-After": str(WAIT)})],
        "outage@example.com": [Reply(500)],
        "refused@example.com": [Reply(400, body=b'{"errors":[{"message":"invalid"}]}')],
    }
    for address, replies in faults.items():
        fake_sendgrid.answer_when(_asset(address), *replies)
        fake_sendgrid.answer_when(_step(address), *replies)

    with app.app_context():
        form = make_form()
        make_page(form=form, asset=make_file_asset())
        make_sequence(email_step(), trigger_form_id=form.id)
        processes = fleet(config)
        processes.start("scheduler", command="scheduler")
        processes.start("worker-1", "worker-2")
        client = app.test_client()
        for address in faults:
            response = fill_and_submit(client, "guide", email=address, first_name="Ann")
            assert response.status_code == 303

        # Every email is settled one way or another: sent, refused for good, or unknown.
        processes.wait_for(settled(lambda: [r.status for r in mail_rows()], len(faults)), 60,
                           "the asset emails to settle")
        processes.wait_for(settled(lambda: [s.status for s in nurture_sends()], len(faults)),
                           60, "the sequence emails to settle")
        received = requests_by_row(fake_sendgrid)
        rows = [("mail", r.id, r.status) for r in mail_rows()] + \
               [("send", s.id, s.status) for s in nurture_sends()]
        for kind, row_id, status in rows:
            requests = received[(kind, row_id)]
            address = requests[0].recipient
            accepted = [r for r in requests if r.accepted]
            assert len(accepted) <= 1, f"{address} ({kind}) reached the provider twice"
            if address == "hang@example.com":
                assert len(requests) == 1 and status == "unknown"  # never sent again
            elif address == "refused@example.com":
                assert len(requests) == 1 and status == "failed"  # not retried
            else:  # taken once; `unknown` only if even that answer came after the timeout
                assert len(accepted) == 1 and status in ("sent", "unknown"), (address, kind)
            if address in ("reset@example.com", "wait@example.com"):
                refused, taken = requests
                earliest = reset_at if address.startswith("reset") else refused.at + WAIT
                assert taken.at >= earliest - 0.3, f"{address} ({kind}) retried too soon"

        # SendGrid's events settle what never got an answer; the journeys all end.
        report_what_was_accepted(client, signer, fake_sendgrid)
        processes.wait_for(lambda: live_enrollments() == [], 30, "every journey to end")
        for statuses in ([r.status for r in mail_rows()], [s.status for s in nurture_sends()]):
            assert sorted(statuses) == ["failed"] + ["sent"] * (len(faults) - 1)
        assert requests_by_row(fake_sendgrid) == received  # nothing was sent again
        assert len(fake_sendgrid.mail_sends) == 2 * len(faults) + 2 * 3  # 3 retried once each
        all_hold(fake_sendgrid, faults, instance_path=config["INSTANCE_PATH"])
        db.session.remove()


def test_a_retry_runs_within_seconds_after_its_worker_is_killed(app_config, make_app,
                                                                fake_sendgrid, signer, fleet):
    """The provider fails once; RQ schedules the retry; the worker whose scheduler holds the
    lock is killed with SIGKILL and another starts at once. The new worker cannot take RQ's
    scheduler lock for a minute, and RQ would look again in 10 minutes: the relay runs it."""
    config = configure(app_config, fake_sendgrid, signer.public_key,
                       OUTBOX_RETRY_INTERVALS=(4, 8))
    app = make_app(config)
    fake_sendgrid.answer_when(_asset("ann@example.com"), Reply(500))
    with app.app_context():
        make_page(form=make_form(), asset=make_file_asset())
        processes = fleet(config)
        processes.start("scheduler", command="scheduler")
        first = processes.start("worker-1")
        client = app.test_client()
        assert fill_and_submit(client, "guide", email="ann@example.com").status_code == 303

        wait_for(lambda: len(fake_sendgrid.mail_sends) == 1, 30, "the first attempt", 0.1)
        (row,) = mail_rows()
        job_id = f"outbox-{_outbox_id()}"
        wait_for(lambda: Job.fetch(job_id, connection=queue.connection()).get_status()
                 == "scheduled", 10, "RQ to schedule the retry", 0.1)
        first.kill()
        killed_at = time.time()
        lock = "rq:scheduler-lock:mail"
        dead = queue.connection().get(lock)  # the dead worker's: held for about a minute
        assert dead is not None
        processes.start("worker-2")

        processes.wait_for(lambda: len(fake_sendgrid.mail_sends) == 2, 45,
                           "the retry after the kill")
        assert queue.connection().get(lock) == dead  # no scheduler could have moved it
        failed_at, retried_at = (r.at for r in fake_sendgrid.mail_sends)
        assert retried_at - failed_at >= 4 - 0.3  # after its back-off...
        assert retried_at - killed_at < 45  # ...and in seconds, not RQ's 10-minute maintenance
        wait_for(lambda: mail_rows()[0].status == "sent", 10, "the ledger to say sent", 0.2)
        assert [r.accepted for r in fake_sendgrid.mail_sends] == [False, True]
        assert row.key.startswith("asset:")
        all_hold(fake_sendgrid, ["ann@example.com"], instance_path=config["INSTANCE_PATH"])
        db.session.remove()


def _outbox_id() -> int:
    import sqlalchemy as sa

    from app.outbox import OutboxJob

    return db.session.scalar(sa.select(OutboxJob.id).where(
        OutboxJob.job == "campaigns.jobs.send_asset_emails"))

"""Web → outbox row → RQ → a real worker (forking, burst mode) → mail backend, same database.

And nothing is lost when Redis is unreachable at request time or forgets its queue.
"""

from datetime import timedelta

import sqlalchemy as sa
import time_machine

from app import outbox
from app.db import db, utcnow
from app.outbox import OutboxJob
from app.worker import run_worker
from tests.helpers import outbox_files

DEAD_REDIS = "redis://127.0.0.1:1/0"


def _rows():
    db.session.expire_all()
    return db.session.scalars(sa.select(OutboxJob).order_by(OutboxJob.id)).all()


def test_job_enqueued_from_a_request_runs_in_a_real_worker(app, client, auth):
    auth.login_as("marketer", email="ops@example.com")
    response = client.post("/admin/outbox/test", data={"to": "Ops@Example.com",
                                                       "csrf_token": auth.csrf("/admin/outbox/")})
    assert response.status_code == 302
    (row,) = _rows()
    assert row.status == "queued"  # enqueued right after the commit
    assert outbox_files() == []

    run_worker(burst=True)

    (row,) = _rows()
    assert row.status == "done" and row.attempts == 1
    (eml,) = outbox_files()
    assert "<Ops@example.com>" in eml.read_text()  # sent to the address as typed
    assert "Subject: Kindling test email" in eml.read_text()


def test_redis_down_at_request_time_loses_nothing(app_config, app, make_app):
    down = make_app({**app_config, "REDIS_URL": DEAD_REDIS})
    with down.test_request_context():
        from tests.helpers import make_user

        user = make_user("ops@example.com", "marketer")
        outbox.add("app.mail.jobs.send_test_email", user.id, "ops@example.com")
        db.session.commit()
        assert outbox.dispatch_committed() == 0  # Redis unreachable: the row waits
        db.session.remove()

    (row,) = _rows()
    assert row.status == "pending"
    assert outbox.relay() == 0  # too fresh: the request path may still dispatch it
    with time_machine.travel(utcnow() + timedelta(seconds=30)):
        assert outbox.relay() == 1
    run_worker(burst=True)
    with time_machine.travel(utcnow() + timedelta(minutes=5)):
        assert outbox.relay() == 0  # done rows are never dispatched again
    run_worker(burst=True)
    assert [r.status for r in _rows()] == ["done"]
    assert len(outbox_files()) == 1


def test_flushed_redis_is_recovered_from_the_database(app, redis_conn):
    from tests.helpers import make_user

    user = make_user("ops@example.com", "marketer")
    outbox.add("app.mail.jobs.send_test_email", user.id, "ops@example.com")
    db.session.commit()
    assert outbox.dispatch_committed() == 1
    redis_conn.flushdb()  # the queued job is gone
    run_worker(burst=True)
    assert outbox_files() == [] and _rows()[0].status == "queued"

    with time_machine.travel(utcnow() + timedelta(seconds=30)):
        assert outbox.relay() == 1
    run_worker(burst=True)
    assert _rows()[0].status == "done"
    assert len(outbox_files()) == 1


def test_a_redelivered_job_does_not_run_twice(app):
    from tests.helpers import make_user

    user = make_user("ops@example.com", "marketer")
    row = outbox.add("app.mail.jobs.send_test_email", user.id, "ops@example.com")
    db.session.commit()
    outbox.run(row.id)
    outbox.run(row.id)  # RQ delivers at least once
    assert len(outbox_files()) == 1


def test_a_failing_job_records_its_error(app):
    row = outbox.add("app.mail.jobs.send_test_email", 1, "not an address")
    db.session.commit()
    try:
        outbox.run(row.id)
    except Exception:  # noqa: BLE001, S110 - the failure itself is what the test provokes
        pass
    (row,) = _rows()
    assert row.status == "pending" and row.attempts == 1
    assert "InvalidEmail" in row.last_error


def test_rolled_back_work_is_never_enqueued(app, redis_conn):
    outbox.add("app.mail.jobs.send_test_email", 1, "ops@example.com")
    db.session.rollback()
    db.session.commit()
    assert outbox.dispatch_committed() == 0
    assert _rows() == []


def test_a_delivery_while_another_runs_the_row_does_nothing(app):
    from tests.helpers import make_user

    user = make_user("ops@example.com", "marketer")
    row = outbox.add("app.mail.jobs.send_test_email", user.id, "ops@example.com")
    db.session.commit()
    row.started_at = utcnow()  # another worker claimed it a moment ago and is still running
    db.session.commit()
    assert outbox.run(row.id) is None
    assert outbox_files() == []
    with time_machine.travel(utcnow() + timedelta(minutes=11)):  # that worker died: lease over
        outbox.run(row.id)
    assert len(outbox_files()) == 1 and _rows()[0].status == "done"


def fail_once(marker: str) -> str:
    """An outbox job for the tests: fails the first time (a provider outage), then works."""
    from pathlib import Path

    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("the provider is down")
    return "ok"


def test_a_retry_no_scheduler_picks_up_is_run_by_the_relay(app, redis_conn, tmp_path):
    """RQ's retries wait in its scheduled registry until a worker holding the scheduler lock
    moves them. A worker restarted after a kill -9 cannot take the lock the dead one held (it
    lives on for a minute), and then RQ only looks again in its 10-minute maintenance: the
    relay moves a retry that is overdue instead."""
    from rq.job import Job

    from app import queue

    row = outbox.add("tests.app.test_outbox_worker.fail_once", str(tmp_path / "marker"))
    db.session.commit()
    rq_job_id = row.rq_job_id
    assert outbox.dispatch_committed() == 1
    run_worker(burst=True)  # the first try fails; RQ schedules the retry
    job = Job.fetch(rq_job_id, connection=queue.connection())
    assert job.get_status() == "scheduled" and _rows()[0].status == "queued"
    # No scheduler runs from here on (the burst worker released its lock when it stopped).

    with time_machine.travel(utcnow() + timedelta(seconds=12)):
        assert outbox.relay() == 0  # not overdue yet: a live scheduler would move it
    with time_machine.travel(utcnow() + timedelta(seconds=30)):
        assert outbox.relay() == 1  # overdue, and no scheduler took it: re-enqueued
        assert outbox.relay() == 0  # once
    assert job.get_status(refresh=True) == "queued"
    run_worker(burst=True)
    (row,) = _rows()
    assert row.status == "done" and row.attempts == 2


def test_a_savepoint_rolled_back_leaves_the_rest_of_the_transaction_to_dispatch(app):
    """The intake processor's row-by-row path and the batch enrollment's fallback roll back
    a savepoint when one row races a twin: the outbox rows the transaction wrote before (the
    batch's listener jobs, e.g. the first nurture email's enrollment) are still enqueued right
    after its commit, not 10-15 s later by the relay."""
    kept = outbox.add("app.mail.jobs.send_test_email", "kept@example.com")
    try:
        with db.session.begin_nested():
            outbox.add("app.mail.jobs.send_test_email", "undone@example.com")
            raise RuntimeError("this row raced a twin")
    except RuntimeError:
        pass
    db.session.commit()

    assert outbox.dispatch_committed() == 1
    (row,) = _rows()
    assert row.id == kept.id and row.status == "queued"

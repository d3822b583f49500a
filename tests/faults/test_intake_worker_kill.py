"""Issue 10, item 4: a real RQ worker turning a large intake backlog into leads is killed with
SIGKILL in the middle of a batch; a new worker finishes. The killed batch committed nothing
(its rows are taken again), and nothing is made twice: one lead, one submission, one
`form_submitted` event and one outbox row per follow-up job for every intake row, each row
processed once (`tests.faults.invariants`).

On PostgreSQL the kill is certain to land mid-batch: the test holds an uncommitted lead with
the address of a row in the second batch, so the worker's insert of that lead waits on the
test's lock, with the rows before it in the batch done but not committed. On SQLite the
processor holds the write lock for its whole batch: the test freezes the worker (SIGSTOP) when it
sees the lock taken after the first batch, and kills it only if, frozen, it still holds the lock
with rows left (else it lets it go on and looks again), so the kill cannot come after the last
batch's commit."""

from __future__ import annotations

import signal
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import queue
from app.db import db
from app.leads.models import Lead
from forms.intake import PROCESS_JOB
from forms.models import Intake, IntakeStatus
from tests.campaigns.helpers import fill_and_submit, make_form, make_page
from tests.faults.invariants import all_hold
from tests.faults.mail_processes import Fleet, fresh
from tests.nurture.worker_process import WorkerProcess, write_settings

pytestmark = pytest.mark.slow

ROWS = 900
BATCH = 300  # three batches: the kill lands in the second
BLOCKED = BATCH + BATCH // 2  # PostgreSQL: the row whose lead the test holds


def _backlog(app) -> list[str]:
    """One real submit (the request path's intake row), copied to ROWS rows of other people,
    received in that order. Returns their addresses."""
    assert fill_and_submit(FlaskClient(app), "guide", email="kill-0@example.com",
                           first_name="Kim").status_code == 303
    template = db.session.scalars(sa.select(Intake)).one()
    columns = {attr.key: getattr(template, attr.key)
               for attr in sa.inspect(Intake).column_attrs}
    emails = [f"kill-{n}@example.com" for n in range(ROWS)]
    rows: list[dict[str, Any]] = []
    for n, email in enumerate(emails[1:], start=1):
        rows.append({**columns, "id": uuid.uuid4().hex,
                     "dedupe_key": f"{template.dedupe_key}-{n}",
                     "received_at": template.received_at + timedelta(milliseconds=n),
                     "data": {**template.data, "email": email},
                     "raw": {**template.raw, "email": email}})
    db.session.execute(sa.insert(Intake), rows)
    db.session.commit()
    return emails


def _done() -> int:
    fresh()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Intake)
                             .where(Intake.status == IntakeStatus.DONE.value)) or 0


@contextmanager
def _hold_lead(email: str) -> Iterator[None]:
    """PostgreSQL: an uncommitted lead with this address in a transaction of the test's own,
    rolled back at the end; another insert of the address waits for it meanwhile."""
    with sa.orm.Session(db.engine) as session:
        session.add(Lead(email=email, email_display=email))
        session.flush()
        try:
            yield
        finally:
            session.rollback()


def _mid_batch(database_url: str) -> bool:
    """Whether the worker is in the middle of its second batch: the first one committed, and
    (PostgreSQL) its insert waits on the test's lock / (SQLite) it holds the write lock."""
    if _done() < BATCH:
        return False
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0,
                               isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:  # database is locked
            return True
        finally:
            conn.close()
    return bool(db.session.scalar(sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND wait_event_type = 'Lock'")))


def _caught_mid_batch(worker: WorkerProcess, database_url: str) -> bool:
    """Whether the worker is mid-batch and stays so until it is killed. On PostgreSQL the
    test's lock holds it there. On SQLite the worker could commit its batch between the look
    and the kill, so it is frozen first and looked at again: a frozen worker that still holds
    the write lock, with rows not done, is in a batch for good. Otherwise it is let go on."""
    if not _mid_batch(database_url):
        return False
    if database_url.startswith("postgresql"):
        return True
    worker.signal_all(signal.SIGSTOP)
    if _mid_batch(database_url) and _done() < ROWS:
        return True
    worker.signal_all(signal.SIGCONT)
    return False


def test_a_worker_killed_mid_batch_makes_nothing_twice(app_config, make_app, tmp_path):
    write_settings(app_config, {"INTAKE_BATCH_SIZE": BATCH, "INTAKE_SWEEP_SECONDS": 3600})
    app = make_app(app_config)
    url = app_config["SQLALCHEMY_DATABASE_URI"]
    processes = Fleet(app_config, tmp_path)
    try:
        with app.app_context():
            make_page(form=make_form())
            emails = _backlog(app)
            postgres = url.startswith("postgresql")
            with _hold_lead(emails[BLOCKED]) if postgres else _nothing():
                queue.enqueue(PROCESS_JOB, result_ttl=0)  # the kick of the last submit
                first = processes.start("worker-1")
                processes.wait_for(lambda: _caught_mid_batch(first, url), 120,
                                   "the worker to be in the middle of a batch after the first")
                first.kill()
            done = _done()
            # Batches are all or nothing: the killed one committed none of its rows.
            assert done == BATCH if postgres else (done < ROWS and done % BATCH == 0), done

            # A new worker; the processor run goes ahead of the follow-up jobs the killed
            # worker had enqueued (as a sweep's would, later).
            queue.get_queue("default").enqueue(PROCESS_JOB, result_ttl=0, at_front=True)
            processes.start("worker-2")
            processes.wait_for(lambda: _done() == ROWS, 180, "the new worker to finish")
            processes.stop()
            all_hold(accepted_emails=emails, instance_path=app_config["INSTANCE_PATH"])
            db.session.remove()
    finally:
        processes.stop()


@contextmanager
def _nothing() -> Iterator[None]:
    yield

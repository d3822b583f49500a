"""Issue 10, item 4: a real RQ worker turning a large intake backlog into leads is killed with
SIGKILL in the middle of a batch; a new worker finishes. The killed batch committed nothing
(its rows are taken again), and nothing is made twice: one lead, one submission, one
`form_submitted` event and one outbox row per follow-up job for every intake row, each row
processed once (`tests.faults.invariants`).

The kill is certain to land mid-batch: the worker is frozen (tests/faults/pause_hook) before it
writes the submissions of its second batch, the first batch committed, the second's claim and
leads written but not committed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import queue
from app.db import db
from forms.intake import PROCESS_JOB
from forms.models import Intake, IntakeStatus
from tests.campaigns.helpers import fill_and_submit, make_form, make_page
from tests.faults.invariants import all_hold
from tests.faults.mail_processes import Fleet, fresh
from tests.faults.pause import paused_at
from tests.nurture.worker_process import write_settings

pytestmark = pytest.mark.slow

ROWS = 900
BATCH = 300  # three batches: the kill lands in the second


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


def test_a_worker_killed_mid_batch_makes_nothing_twice(app_config, make_app, tmp_path):
    write_settings(app_config, {"INTAKE_BATCH_SIZE": BATCH, "INTAKE_SWEEP_SECONDS": 3600})
    app = make_app(app_config)
    processes = Fleet(app_config, tmp_path)
    try:
        with app.app_context():
            make_page(form=make_form())
            emails = _backlog(app)
            queue.enqueue(PROCESS_JOB, result_ttl=0)  # the kick of the last submit
            paused = tmp_path / "paused"
            first = processes.start("worker-1", env=paused_at(
                "INSERT INTO submissions", transaction=2, marker=paused))
            processes.wait_for(paused.exists, 120,
                               "the worker to be in the middle of a batch after the first")
            first.kill()
            done = _done()
            # Batches are all or nothing: the killed one committed none of its rows.
            assert done == BATCH, done

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


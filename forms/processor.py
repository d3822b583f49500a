"""The intake processor: intake rows become leads, in batches, each exactly once.

An RQ job (`forms.jobs.process_intake`), kicked after each submit (`forms.intake.kick`) and
swept by the scheduler so no row waits when Redis lost the kick. Each batch takes up to
`INTAKE_BATCH_SIZE` new rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers share
the work) and makes their effect (spam verdict → quarantine, lead upsert, submission,
`form_submitted` event, consent ledger rows, the listeners' outbox rows, double opt-in) set-based,
a handful of statements for the whole batch (`forms.intake_batch`), in a savepoint. Rows that
path leaves alone, or the whole batch when a concurrent writer got in its way, run through
`forms.pipeline.apply` one by one, each in a savepoint of its own. Then the rows are marked
done and the batch commits once. A worker killed mid-batch commits nothing: the rows are taken
again, and the submission's unique `intake_id` keeps anything from being made twice. A row
that fails is retried by later runs, then marked failed (kept, shown to operators via
`flask intake`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import selectinload

from app import outbox
from app.db import db, update_rows, utcnow
from app.jobs import JobTimeout
from app.leads.service import events_written
from app.logs import brief
from forms import intake_batch, pipeline
from forms.models import Form, Intake, IntakeStatus

log = logging.getLogger(__name__)
_INTAKE = cast(sa.Table, Intake.__table__)

BATCH_SIZE = 200
MAX_ATTEMPTS = 5
APPLY_ATTEMPTS = 3  # a racing twin (another worker's row of the same new lead) costs a retry


def _batch_size() -> int:
    return int(current_app.config.get("INTAKE_BATCH_SIZE", BATCH_SIZE))


def _claim(limit: int, intake_id: str | None = None) -> list[Intake]:
    query = (sa.select(Intake).where(Intake.status == IntakeStatus.NEW.value)
             .order_by(Intake.received_at).limit(limit))
    if intake_id is not None:
        query = query.where(Intake.id == intake_id)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    elif db.engine.dialect.name == "sqlite":
        # Write first: the driver then opens the transaction (so the rows' savepoints are
        # inside it, not committed one by one), and SQLite's write lock makes a second
        # processor wait until this batch committed instead of taking the same rows.
        db.session.execute(sa.update(Intake).where(Intake.status == IntakeStatus.NEW.value)
                           .values(attempts=Intake.attempts))
    return list(db.session.scalars(query))


def _forms(rows: list[Intake]) -> dict[int, Form]:
    ids = {row.form_id for row in rows}
    found = db.session.scalars(sa.select(Form).where(Form.id.in_(ids))
                               .options(selectinload(Form.fields)))
    return {form.id: form for form in found}


def _apply(row: Intake, form: Form) -> int:
    data: dict[str, Any] = dict(row.data or {})
    for attempt in range(APPLY_ATTEMPTS):
        try:
            with db.session.begin_nested():
                return pipeline.apply(form, data, row.raw or {}, intake_batch.context(row),
                                      row.suspect_reason, intake_id=row.id,
                                      received_at=row.received_at)
        except (IntegrityError, pipeline._Twin):
            if attempt == APPLY_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _set_based(rows: list[Intake], forms: dict[int, Form], now: datetime,
               ) -> intake_batch.Outcome | None:
    """The batch's set-based path in a savepoint. A concurrent writer that made one of its
    leads first (`Conflict`) costs a retry, which sees that lead; None (nothing kept) after
    the last retry or an unexpected error: then every row goes the careful way."""
    for attempt in range(APPLY_ATTEMPTS):
        try:
            with db.session.begin_nested():
                return intake_batch.apply(rows, forms, now)
        except intake_batch.Conflict as exc:
            if attempt == APPLY_ATTEMPTS - 1:
                log.warning("intake: batch of %d taken row by row (%s)", len(rows), brief(exc))
        except JobTimeout:  # RQ stops the job: not the batch's fault, nothing is kept
            raise
        except Exception as exc:  # noqa: BLE001 - the row-by-row path retries or fails each row
            log.warning("intake: batch of %d taken row by row (%s: %s)", len(rows),
                        type(exc).__name__, brief(exc))
            break
    return None


def process_batch(limit: int | None = None, intake_id: str | None = None) -> int:
    """Process up to `limit` new rows in one transaction. Returns how many were taken."""
    rows = _claim(limit or _batch_size(), intake_id)
    if not rows:
        db.session.rollback()
        return 0
    forms = _forms(rows)
    now = utcnow()
    outcome = _set_based(rows, forms, now)
    careful = rows if outcome is None else outcome.left
    if outcome is not None:
        _mark_done([row for row in rows if row.id in outcome.submission_ids],
                   outcome.submission_ids, now)
        db.session.info.setdefault("outbox_new", []).extend(outcome.outbox_ids)
    for row in careful:
        form = forms.get(row.form_id)
        try:
            if form is None:
                raise LookupError(f"form {row.form_id} no longer exists")
            _done(row, _apply(row, form), now)
        except JobTimeout:  # the job's time is up: the batch rolls back, its rows wait
            raise
        except Exception as exc:  # this row only: the batch goes on
            log.exception("intake %s could not be processed", row.id)
            row.attempts += 1
            row.error = f"{type(exc).__name__}: {exc}"[:2000]
            if row.attempts >= MAX_ATTEMPTS or form is None:
                row.status = IntakeStatus.FAILED.value
                row.processed_at = now
    db.session.commit()
    if outcome is not None and outcome.lead_ids:
        events_written(outcome.lead_ids)  # scoring: these events bypassed the ORM's flush
    return len(rows)


def _mark_done(rows: list[Intake], submission_ids: dict[str, int], now: datetime) -> None:
    """`_done` for the set-based path's rows, in one UPDATE (not one per row at the flush)."""
    if not rows:
        return
    update_rows(_INTAKE, [{"id": row.id, "submission_id": submission_ids[row.id],
                           "status": IntakeStatus.DONE.value, "processed_at": now}
                          for row in rows])
    failed_before = [row.id for row in rows if row.error is not None]
    if failed_before:  # `update_rows` cannot set NULL: the errors of earlier tries go here
        db.session.execute(sa.update(Intake).where(Intake.id.in_(failed_before))
                           .values(error=None).execution_options(synchronize_session=False))


def _done(row: Intake, submission_id: int, now: datetime) -> None:
    row.submission_id = submission_id
    row.status = IntakeStatus.DONE.value
    row.processed_at = now
    row.error = None


def drain(max_batches: int = 1000) -> int:
    """Process new rows until none is left (or `max_batches` ran). Returns rows taken."""
    total = 0
    size = _batch_size()
    for _ in range(max_batches):
        taken = process_batch(size)
        total += taken
        _dispatch()
        if taken:
            refresh_statistics()
        if taken < size:
            break
    return total


# The tables a batch reads by key and grows: their planner statistics must follow their size
# (`intake` is read through its (status, received_at) index whatever its statistics say).
STATISTICS_TABLES = ("submissions", "leads", "events")
STATISTICS_CHECK_SECONDS = 5.0
_statistics_checked = 0.0


def refresh_statistics(*, force: bool = False) -> list[str]:
    """PostgreSQL: ANALYZE those of `STATISTICS_TABLES` that have changed by more than their
    size (at least 1,000 rows) since their last ANALYZE, at most every few seconds per process.
    Returns the tables analyzed.

    Why: without statistics the planner takes a batch's `fingerprint IN (200 keys)` for a
    large share of `submissions` and scans the whole table, and the plans psycopg prepares
    (after five runs of a statement) are chosen while the tables are small, then kept. A
    backlog drained on a fresh or young database (or with autovacuum off, or before its next
    pass) then costs more per batch the more rows it has written: 1,210 rows/s at a
    2,000-row backlog, 547 at 23,000. ANALYZE also invalidates those cached plans."""
    global _statistics_checked
    if db.engine.dialect.name != "postgresql":
        return []
    now = time.monotonic()
    if not force and now - _statistics_checked < STATISTICS_CHECK_SECONDS:
        return []
    _statistics_checked = now
    stale = list(db.session.scalars(sa.text(
        "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
        "WHERE s.schemaname = current_schema() AND s.relname IN :names "
        "AND s.n_mod_since_analyze > greatest(1000, c.reltuples)"
    ).bindparams(sa.bindparam("names", expanding=True)), {"names": list(STATISTICS_TABLES)}))
    db.session.rollback()
    done = []
    for name in stale:
        try:
            # Another worker analyzing it already is as good: do not queue behind it.
            db.session.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
            db.session.execute(sa.text(f'ANALYZE "{name}"'))
            db.session.commit()
            done.append(name)
        except DBAPIError as exc:
            db.session.rollback()
            log.info("intake: ANALYZE %s skipped (%s)", name, type(exc.orig).__name__)
    return done


def _dispatch() -> None:
    """Enqueue the batch's follow-up work now (freshness); the relay covers a Redis failure."""
    try:
        outbox.dispatch_committed()
    except RedisError as exc:
        log.warning("intake: follow-up not enqueued now (%s); the outbox relay will", exc)


def process_one(intake_id: str) -> int | None:
    """Process this one row now if it is still new (the download link of a visitor who was
    faster than the worker). The submission id, or None while another worker holds it."""
    process_batch(1, intake_id)
    return db.session.scalar(sa.select(Intake.submission_id).where(Intake.id == intake_id))

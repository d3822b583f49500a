"""The transactional outbox: follow-up work recorded in the same commit as the data it needs.

A request writes an `OutboxJob` row beside its lead and event rows. After the commit the job is
enqueued on RQ right away; if Redis is unreachable then, nothing is lost: the periodic `relay`
finds rows that were never dispatched (or whose RQ job vanished with a flushed Redis, or whose
retry RQ scheduled is overdue with no scheduler to move it) and enqueues them. `run` executes a
row at most once to completion: a redelivered job finds it done. A job that raises is retried
by RQ after OUTBOX_RETRY_INTERVALS; one that raises `app.jobs.RetryLater` is retried after
the same back-off, or later if it asks.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.utils import import_attribute
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import queue
from app.db import JSONType, Model, UTCDateTime, db, rows_matched, utcnow
from app.jobs import RetryLater, job

log = logging.getLogger(__name__)

# A run that started this long ago and never finished (its worker died) may be claimed again.
CLAIM_LEASE = timedelta(minutes=10)


def retry_intervals() -> list[int]:
    """Seconds RQ waits between the attempts of one outbox job (OUTBOX_RETRY_INTERVALS)."""
    return [int(s) for s in current_app.config["OUTBOX_RETRY_INTERVALS"]]


class OutboxJob(Model):
    __tablename__ = "outbox_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(sa.String(200))  # dotted path of the callable
    args: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    queue: Mapped[str] = mapped_column(sa.String(40), default="default")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Optional: one row per key, so a double submit cannot schedule the same work twice.
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)

    __table_args__ = (sa.Index("ix_outbox_jobs_pending", "done_at", "failed_at", "dispatched_at"),)

    @property
    def rq_job_id(self) -> str:
        return f"outbox-{self.id}"

    @property
    def status(self) -> str:
        if self.done_at:
            return "done"
        if self.failed_at:
            return "failed"
        if self.dispatched_at:
            return "queued"
        return "pending"


def add(job_path: str, *args: Any, queue_name: str = "default",
        dedupe_key: str | None = None) -> OutboxJob:
    """Record follow-up work in the current transaction; it is enqueued after commit."""
    row = OutboxJob(job=job_path, args=list(args), queue=queue_name, dedupe_key=dedupe_key)
    db.session.add(row)
    db.session.flush()
    db.session.info.setdefault("outbox_new", []).append(row.id)
    return row


@sa.event.listens_for(Session, "after_commit")
def _remember_committed(session: Session) -> None:
    new = session.info.pop("outbox_new", None)
    if new:
        session.info.setdefault("outbox_committed", []).extend(new)


@sa.event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    """The transaction's rows are gone. A savepoint's rollback (SQLAlchemy fires this event for
    it too) keeps the list: the rows written before it are still to be enqueued at the commit,
    and one it undid is simply not found then (`dispatch_committed` reads the rows)."""
    if session.in_nested_transaction():
        return
    session.info.pop("outbox_new", None)


def dispatch_committed() -> int:
    """Enqueue the rows this session committed. Called at the end of a request or job.

    A Redis failure here is logged and left to the relay: the row is already safe.
    """
    ids = db.session.info.pop("outbox_committed", None)
    if not ids:
        return 0
    rows = db.session.execute(sa.select(OutboxJob.id, OutboxJob.job, OutboxJob.queue)
                              .where(OutboxJob.id.in_(ids)).order_by(OutboxJob.id)).all()
    return _dispatch(rows)


DISPATCH_CHUNK = 1000  # jobs per Redis MULTI/EXEC


def _dispatch(rows) -> int:
    """Enqueue `rows` (anything with .id, .job and .queue) on RQ, one MULTI/EXEC pipeline per
    DISPATCH_CHUNK rows: each chunk all or nothing; after a Redis failure the rest waits for
    the relay. Marks what was enqueued as dispatched and commits."""
    intervals = retry_intervals()
    retry = Retry(max=len(intervals), interval=intervals)
    sent: list[int] = []
    try:
        for start in range(0, len(rows), DISPATCH_CHUNK):
            chunk = rows[start:start + DISPATCH_CHUNK]
            by_queue: dict[str, list[Any]] = {}
            for row in chunk:
                by_queue.setdefault(row.queue, []).append(Queue.prepare_data(
                    "app.outbox.run", args=(row.id,), job_id=f"outbox-{row.id}", retry=retry,
                    failure_ttl=7 * 24 * 3600, description=f"outbox {row.id}: {row.job}"))
            with queue.connection().pipeline() as pipe:
                for name, datas in by_queue.items():
                    queue.get_queue(name).enqueue_many(datas, pipeline=pipe)
                pipe.execute()
            sent.extend(row.id for row in chunk)
    except RedisError as exc:
        log.warning("%d outbox row(s) not enqueued (%s); the relay will retry",
                    len(rows) - len(sent), exc)
    if sent:
        db.session.execute(sa.update(OutboxJob).where(OutboxJob.id.in_(sent))
                           .values(dispatched_at=utcnow())
                           .execution_options(synchronize_session=False))
        db.session.commit()
    return len(sent)


def _vanished(row: OutboxJob, grace: float) -> bool:
    """True when Redis no longer has a live job for a dispatched row (flushed, expired, failed
    for good), or holds its retry past due with nobody moving it: the database says the work
    is not done, so it must be enqueued again."""
    try:
        rq_job = Job.fetch(row.rq_job_id, connection=queue.connection())
    except NoSuchJobError:
        return True
    status = rq_job.get_status(refresh=False)
    if status == JobStatus.SCHEDULED:
        return _take_overdue(rq_job, grace)
    return status in (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.STOPPED,
                      JobStatus.FINISHED)


def _take_overdue(rq_job: Job, grace: float) -> bool:
    """A retry RQ scheduled is moved to its queue by the scheduler of whichever worker holds
    the queue's scheduler lock, within a second of its time. A worker killed with SIGKILL keeps
    that lock for a minute after its death, and a worker started meanwhile only tries again in
    RQ's 10-minute maintenance: the retry would wait that long. Overdue by more than `grace`,
    it is taken out of the scheduled registry here (ZREM: if a scheduler got it first, that
    one enqueues it) and counts as lost."""
    registry = ScheduledJobRegistry(rq_job.origin, connection=queue.connection())
    due = queue.connection().zscore(registry.key, rq_job.id)
    if due is None or due + grace > time.time():
        return False
    return bool(queue.connection().zrem(registry.key, rq_job.id))


@job
def relay(limit: int = 500) -> int:
    """Enqueue outbox rows that were never dispatched, or whose RQ job is gone. Periodic."""
    grace = timedelta(seconds=int(current_app.config["OUTBOX_RELAY_AFTER_SECONDS"]))
    cutoff = utcnow() - grace
    pending = sa.and_(OutboxJob.done_at.is_(None), OutboxJob.failed_at.is_(None))
    never = db.session.scalars(
        sa.select(OutboxJob)
        .where(pending, OutboxJob.dispatched_at.is_(None), OutboxJob.created_at <= cutoff)
        .order_by(OutboxJob.id).limit(limit)
    ).all()
    stale = db.session.scalars(
        sa.select(OutboxJob)
        .where(pending, OutboxJob.dispatched_at.is_not(None), OutboxJob.dispatched_at <= cutoff)
        .order_by(OutboxJob.id).limit(limit)
    ).all()
    overdue = float(current_app.config["OUTBOX_SCHEDULED_GRACE_SECONDS"])
    lost = [row for row in stale if _vanished(row, overdue)]
    if lost:
        log.info("outbox relay: %d job(s) lost by Redis or left overdue re-enqueued", len(lost))
    return _dispatch(list(never) + lost)


@job
def run(outbox_id: int) -> Any:
    """Execute one outbox row. Safe to deliver twice: a done row is skipped, and of two
    deliveries running at once only the one that claims the row (compare-and-set) works."""
    now = utcnow()
    claimed = rows_matched(
        sa.update(OutboxJob)
        .where(OutboxJob.id == outbox_id, OutboxJob.done_at.is_(None),
               OutboxJob.failed_at.is_(None),
               sa.or_(OutboxJob.started_at.is_(None), OutboxJob.started_at < now - CLAIM_LEASE))
        .values(started_at=now, attempts=OutboxJob.attempts + 1)
    )
    db.session.commit()
    if not claimed:
        return None  # done, given up, or running elsewhere right now
    row = db.session.get_one(OutboxJob, outbox_id)
    func = import_attribute(row.job)
    try:
        result = func(*row.args)
    except RetryLater as exc:
        return _retry_later(outbox_id, exc)
    except Exception as exc:
        _record_failure(outbox_id, exc)
        raise
    row = db.session.get_one(OutboxJob, outbox_id)
    row.done_at = utcnow()
    row.last_error = None
    db.session.commit()
    dispatch_committed()
    return result


def _record_failure(outbox_id: int, exc: Exception) -> OutboxJob:
    """The attempt failed: say why, and let a retry claim the row, unless it was the last."""
    db.session.rollback()
    row = db.session.get_one(OutboxJob, outbox_id)
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    row.started_at = None  # RQ's retry may claim it again
    if row.attempts >= int(current_app.config["OUTBOX_MAX_ATTEMPTS"]):
        row.failed_at = utcnow()
    db.session.commit()
    return row


def _retry_later(outbox_id: int, exc: RetryLater) -> Retry | None:
    """The job asked to be tried again: an RQ `Retry` (a job's return value RQ understands)
    after the back-off of this attempt, or the job's own wait when that is longer. None (no
    retry) after the last attempt."""
    row = _record_failure(outbox_id, exc)
    if row.failed_at is not None:
        log.warning("outbox %s (%s) gave up after %d attempts: %s", row.id, row.job,
                    row.attempts, exc)
        return None
    intervals = retry_intervals()
    backoff = intervals[min(row.attempts, len(intervals)) - 1]
    delay = max(backoff, exc.after or 0)
    return Retry(max=int(current_app.config["OUTBOX_MAX_ATTEMPTS"]), interval=math.ceil(delay))


def init_app(app) -> None:
    @app.teardown_request
    def _dispatch_after_request(exc: BaseException | None) -> None:
        # `registry.has()`: a request that never used the database gets no session made here.
        if exc is None and db.session.registry.has() and db.session.info.get("outbox_committed"):
            try:
                dispatch_committed()
            except Exception:  # never turn a saved submission into an error page
                log.exception("outbox dispatch after request failed; the relay will retry")

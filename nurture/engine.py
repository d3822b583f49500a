"""The engine: which enrollment runs which step when. The database is the source of truth.

`Enrollment.next_run_at` says when the tick should look at an enrollment next. The tick claims
due rows in bounded batches by moving `next_run_at` a lease into the future (PostgreSQL:
`FOR UPDATE SKIP LOCKED`; SQLite: one UPDATE, SQLite having a single writer) with one
`UPDATE … RETURNING` per batch, then enqueues `nurture.jobs.run_steps` jobs, one per chunk of
`NURTURE_RUN_CHUNK` claimed rows, in one Redis round trip. If Redis loses a job (or a worker dies
in the middle of a chunk), the lease runs out and the next tick claims the rows again; a step
that runs twice finds the step done (or the ledger row) and does nothing.
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy.orm import contains_eager, joinedload

from app import queue
from app.db import db, utcnow
from app.leads.models import Lead
from nurture import conditions, sender
from nurture import enrollment as enrollments
from nurture.models import (
    Enrollment,
    EnrollmentStatus,
    Sequence,
    SequenceStatus,
    Step,
    StepKind,
    Suppression,
)
from nurture.steps import following
from nurture.suppression import blocked_reason, why_not_emailable
from nurture.timing import wait_until

log = logging.getLogger(__name__)

RUN_STEP = "nurture.jobs.run_step"  # one (enrollment, step)
RUN_STEPS = "nurture.jobs.run_steps"  # a chunk of them, what the tick and kicks enqueue
STEPS_QUEUE = "mail"
# The first step of a journey a person's own action just started (a form submit, a stage
# reached), and the submit's enrollment: a queue the workers take first (RQ_QUEUES), so that
# first email does not wait behind new intake runs, the asset emails and the tick's backlog.
FIRST_STEPS_QUEUE = "first-steps"
JOB_FAILURE_TTL = 7 * 24 * 3600
COMPLETED = "completed every step"  # the exit reason of a journey past its last step


def _setting(name: str) -> int:
    return int(current_app.config[name])


def claim_due(limit: int, only_ids: list[int] | None = None) -> list[tuple[int, int]]:
    """Claim up to `limit` due enrollments; returns (enrollment_id, step_id) pairs. Commits.

    One statement: the UPDATE moves the rows' `next_run_at` a lease ahead and RETURNs what it
    claimed, so finding the claimed rows never scans the table (the due rows come from
    ix_nurture_enrollments_due).
    """
    now = utcnow()
    token = uuid.uuid4().hex  # kept on the row: which tick (or kick) claimed it last
    lease_until = now + timedelta(seconds=_setting("NURTURE_CLAIM_LEASE_SECONDS"))
    live_sequences = sa.select(Sequence.id).where(Sequence.status == SequenceStatus.ACTIVE.value)
    due = sa.and_(Enrollment.status == EnrollmentStatus.ACTIVE.value,
                  Enrollment.next_run_at <= now, Enrollment.step_id.is_not(None),
                  Enrollment.sequence_id.in_(live_sequences))
    if only_ids is not None:
        due = sa.and_(due, Enrollment.id.in_(only_ids))
    pick = sa.select(Enrollment.id).where(due).order_by(Enrollment.next_run_at).limit(limit)
    if db.engine.dialect.name == "postgresql":
        # Rows another claimer holds are skipped, not waited for; the subquery is locked
        # before the UPDATE touches them, so two ticks never claim the same row.
        pick = pick.with_for_update(skip_locked=True)
    # SQLite: the UPDATE itself is the claim (a single writer).
    claimed = db.session.execute(
        sa.update(Enrollment).where(Enrollment.id.in_(pick.scalar_subquery()))
        .values(next_run_at=lease_until, claim_token=token)
        .returning(Enrollment.id, Enrollment.step_id)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return sorted((row.id, row.step_id) for row in claimed)


def chunks(claimed: list[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
    size = max(1, size)
    return [claimed[i:i + size] for i in range(0, len(claimed), size)]


def dispatch(claimed: list[tuple[int, int]], queue_name: str = STEPS_QUEUE) -> int:
    """Enqueue run_steps jobs for claimed rows, one per chunk of NURTURE_RUN_CHUNK, all in one
    Redis pipeline. A Redis failure hands every row back to the tick (a job that did reach
    Redis anyway only finds its steps done: run_step is idempotent)."""
    if not claimed:
        return 0
    jobs = [([[e, s] for e, s in part],) for part in chunks(claimed, _setting("NURTURE_RUN_CHUNK"))]
    try:
        queue.enqueue_many(
            RUN_STEPS, jobs, queue=queue_name, failure_ttl=JOB_FAILURE_TTL,
            description=lambda args: "nurture steps " + ", ".join(
                f"{e}:{s}" for e, s in args[0][:10]) + (" …" if len(args[0]) > 10 else ""))
    except RedisError as exc:
        log.warning("nurture: run_steps not enqueued (%s); the tick will retry", exc)
        db.session.execute(sa.update(Enrollment)
                           .where(Enrollment.id.in_([e for e, _ in claimed]))
                           .values(next_run_at=utcnow())
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return 0
    return len(claimed)


def tick() -> int:
    """Claim and enqueue everything due, batch by batch. Returns how many were enqueued."""
    batch = _setting("NURTURE_TICK_BATCH")
    total = 0
    for _ in range(_setting("NURTURE_TICK_MAX_BATCHES")):
        claimed = claim_due(batch)
        total += dispatch(claimed)
        if len(claimed) < batch:
            break
    return total


def kick(enrollment_ids: list[int], queue_name: str = STEPS_QUEUE) -> int:
    """Run these enrollments' due steps now rather than at the next tick (after a commit), on
    `queue_name` (FIRST_STEPS_QUEUE for journeys a person's action just started)."""
    if not enrollment_ids:
        return 0
    return dispatch(claim_due(len(enrollment_ids), only_ids=list(enrollment_ids)), queue_name)


def advance(enrollment: Enrollment, to: Step | None, at=None) -> None:
    """Move to step `to` (due at `at`, default now), or finish at the end. Commits; a step due
    now is enqueued at once."""
    now = utcnow()
    if to is None:
        enrollments.end(enrollment, COMPLETED, finished=True)
        db.session.commit()
        return
    enrollment.step_id = to.id
    enrollment.step_entered_at = now
    enrollment.next_run_at = at or now
    db.session.commit()
    if enrollment.next_run_at <= now:
        kick([enrollment.id])


_UNREAD = object()


def stop_reason(enrollment: Enrollment, *, suppressed=_UNREAD) -> tuple[str, bool] | None:
    """(reason, finished) when the journey must end before this step, else None.
    `suppressed`: the lead's suppression reason (or None), when the caller read it with the
    lead; otherwise it is looked up."""
    lead = enrollment.lead
    if suppressed is _UNREAD:
        stop = journey_stop(lead, enrollment.sequence, None)
        if stop is not None:
            return stop
        blocked = why_not_emailable(lead)
        return (blocked, False) if blocked else None
    return journey_stop(lead, enrollment.sequence, suppressed)


def journey_stop(lead: Lead, sequence: Sequence,
                 suppressed: str | None) -> tuple[str, bool] | None:
    """`stop_reason` on what the caller read: the lead, its sequence (with its steps) and the
    reason of the lead's suppression row (None when there is none)."""
    if lead.stage in (sequence.exit_stages or []):
        return f"reached the exit stage {lead.stage}", False
    for step in sequence.steps:
        if step.kind == StepKind.GOAL.value and lead.stage in (step.goal_stages or []):
            return f"goal reached: {lead.stage}", True
    blocked = blocked_reason(lead, suppressed)
    if blocked:
        return blocked, False
    return None


def load_enrollment(enrollment_id: int) -> tuple[Enrollment | None, str | None]:
    """The enrollment with its lead, sequence and the sequence's steps, and the reason of the
    lead's suppression row (None when there is none), in one SELECT: what a step needs (its
    current step comes from the identity map). Objects already in the session are read again:
    a step decides on what the database says now."""
    row = db.session.execute(
        _load_statement(), {"enrollment_id": enrollment_id}
    ).unique().one_or_none()
    return (row[0], row[1]) if row is not None else (None, None)


@functools.cache
def _load_statement() -> sa.Select:
    # Built once: constructing the loader options costs more than running the statement.
    return (
        sa.select(Enrollment, Suppression.reason)
        .join(Enrollment.lead)
        .outerjoin(Suppression, Suppression.email == Lead.email)
        .where(Enrollment.id == sa.bindparam("enrollment_id"))
        .options(contains_eager(Enrollment.lead),
                 joinedload(Enrollment.sequence).joinedload(Sequence.steps))
        .execution_options(populate_existing=True)
    )


def run_step(enrollment_id: int, step_id: int) -> str:
    """Run one step of one enrollment. Safe to run twice or late: it re-checks everything."""
    enrollment, suppressed = load_enrollment(enrollment_id)
    if enrollment is None or enrollment.status != EnrollmentStatus.ACTIVE.value \
            or enrollment.step_id != step_id:
        return "stale"
    if not enrollment.sequence.is_active:
        return "sequence not active"  # the tick skips it until the sequence is live again
    stop = stop_reason(enrollment, suppressed=suppressed)
    if stop is not None:
        enrollments.end(enrollment, stop[0], finished=stop[1])
        db.session.commit()
        return f"ended: {stop[0]}"
    step = enrollment.step
    assert step is not None  # checked against `step_id` above
    kind = step.kind
    if kind == StepKind.EMAIL.value:
        return sender.run_email_step(enrollment, step)
    if kind == StepKind.WAIT.value:
        advance(enrollment, following(step), wait_target(enrollment, step))
        return "waiting"
    if kind == StepKind.BRANCH.value:
        answer = conditions.evaluate(step, enrollment)
        target_id = step.yes_step_id if answer else step.no_step_id
        target = db.session.get(Step, target_id) if target_id else following(step)
        advance(enrollment, target)
        return f"branch: {'yes' if answer else 'no'}"
    return _goal_not_yet(enrollment, step)


def wait_target(enrollment: Enrollment, step: Step):
    now = utcnow()
    if step.wait_until:
        tz = enrollments.zone_of(enrollment)
        return wait_until(now, tz, step.wait_until) or now
    return now + timedelta(seconds=step.wait_seconds or 0)


def _goal_not_yet(enrollment: Enrollment, step: Step) -> str:
    """At a goal step whose goal is not met: look again later, then move on when time is up."""
    now = utcnow()
    limit = step.wait_seconds or _setting("NURTURE_GOAL_WAIT_SECONDS")
    deadline = (enrollment.step_entered_at or now) + timedelta(seconds=limit)
    if now >= deadline:
        nxt = following(step)
        if nxt is None:
            enrollments.end(enrollment, "goal not reached in time", finished=True)
            db.session.commit()
        else:
            advance(enrollment, nxt)
        return "goal: time is up"
    recheck = now + timedelta(seconds=_setting("NURTURE_GOAL_RECHECK_SECONDS"))
    enrollment.next_run_at = min(recheck, deadline)
    db.session.commit()
    return "goal: waiting"

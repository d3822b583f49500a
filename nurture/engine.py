"""The engine: which enrollment runs which step when. The database is the source of truth.

`Enrollment.next_run_at` says when the tick should look at an enrollment next. The tick claims
due rows in bounded batches by moving `next_run_at` a lease into the future (PostgreSQL:
`FOR UPDATE SKIP LOCKED`; SQLite: one UPDATE, SQLite having a single writer), then enqueues
`nurture.jobs.run_step`. If Redis loses the job, the lease runs out and the next tick claims the
row again; a job that runs twice finds the step done (or the ledger row) and does nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from app import queue
from app.db import db, utcnow
from nurture import conditions, enrollment as enrollments, sender
from nurture.models import Enrollment, EnrollmentStatus, Sequence, SequenceStatus, Step, StepKind
from nurture.steps import following
from nurture.suppression import why_not_emailable
from nurture.timing import lead_zone, wait_until

log = logging.getLogger(__name__)

RUN_STEP = "nurture.jobs.run_step"


def _setting(name: str) -> int:
    return int(current_app.config[name])


def claim_due(limit: int, only_ids: list[int] | None = None) -> list[tuple[int, int]]:
    """Claim up to `limit` due enrollments; returns (enrollment_id, step_id) pairs. Commits."""
    now = utcnow()
    token = uuid.uuid4().hex
    lease_until = now + timedelta(seconds=_setting("NURTURE_CLAIM_LEASE_SECONDS"))
    live_sequences = sa.select(Sequence.id).where(Sequence.status == SequenceStatus.ACTIVE.value)
    due = sa.and_(Enrollment.status == EnrollmentStatus.ACTIVE.value,
                  Enrollment.next_run_at <= now, Enrollment.step_id.is_not(None),
                  Enrollment.sequence_id.in_(live_sequences))
    if only_ids is not None:
        due = sa.and_(due, Enrollment.id.in_(only_ids))
    pick = sa.select(Enrollment.id).where(due).order_by(Enrollment.next_run_at).limit(limit)
    if db.engine.dialect.name == "postgresql":
        ids = db.session.scalars(pick.with_for_update(skip_locked=True)).all()
        target = Enrollment.id.in_(ids)
    else:
        target = Enrollment.id.in_(pick)  # the UPDATE itself is the claim
    db.session.execute(
        sa.update(Enrollment).where(target)
        .values(next_run_at=lease_until, claim_token=token)
        .execution_options(synchronize_session=False)
    )
    claimed = db.session.execute(
        sa.select(Enrollment.id, Enrollment.step_id).where(Enrollment.claim_token == token)
    ).all()
    db.session.commit()
    return [(row.id, row.step_id) for row in claimed]


def dispatch(claimed: list[tuple[int, int]]) -> int:
    """Enqueue run_step for claimed rows. A Redis failure hands the rest back to the tick."""
    sent = 0
    for index, (enrollment_id, step_id) in enumerate(claimed):
        try:
            queue.enqueue(RUN_STEP, enrollment_id, step_id, queue="mail",
                          failure_ttl=7 * 24 * 3600,
                          description=f"nurture enrollment {enrollment_id} step {step_id}")
        except RedisError as exc:
            log.warning("nurture: run_step not enqueued (%s); the tick will retry", exc)
            rest = [e for e, _ in claimed[index:]]
            db.session.execute(sa.update(Enrollment).where(Enrollment.id.in_(rest))
                               .values(next_run_at=utcnow())
                               .execution_options(synchronize_session=False))
            db.session.commit()
            break
        sent += 1
    return sent


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


def kick(enrollment_ids: list[int]) -> int:
    """Run these enrollments' due steps now rather than at the next tick (after a commit)."""
    if not enrollment_ids:
        return 0
    return dispatch(claim_due(len(enrollment_ids), only_ids=list(enrollment_ids)))


def advance(enrollment: Enrollment, to: Step | None, at=None) -> None:
    """Move to step `to` (due at `at`, default now), or finish at the end. Commits; a step due
    now is enqueued at once."""
    now = utcnow()
    if to is None:
        enrollments.end(enrollment, "completed every step", finished=True)
        db.session.commit()
        return
    enrollment.step_id = to.id
    enrollment.step_entered_at = now
    enrollment.next_run_at = at or now
    db.session.commit()
    if enrollment.next_run_at <= now:
        kick([enrollment.id])


def stop_reason(enrollment: Enrollment) -> tuple[str, bool] | None:
    """(reason, finished) when the journey must end before this step, else None."""
    lead, sequence = enrollment.lead, enrollment.sequence
    if lead.stage in (sequence.exit_stages or []):
        return f"reached the exit stage {lead.stage}", False
    for step in sequence.steps:
        if step.kind == StepKind.GOAL.value and lead.stage in (step.goal_stages or []):
            return f"goal reached: {lead.stage}", True
    blocked = why_not_emailable(lead)
    if blocked:
        return blocked, False
    return None


def run_step(enrollment_id: int, step_id: int) -> str:
    """Run one step of one enrollment. Safe to run twice or late: it re-checks everything."""
    enrollment = db.session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.status != EnrollmentStatus.ACTIVE.value \
            or enrollment.step_id != step_id:
        return "stale"
    if not enrollment.sequence.is_active:
        return "sequence not active"  # the tick skips it until the sequence is live again
    stop = stop_reason(enrollment)
    if stop is not None:
        enrollments.end(enrollment, stop[0], finished=stop[1])
        db.session.commit()
        return f"ended: {stop[0]}"
    step = enrollment.step
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
        tz = lead_zone(enrollment.lead, enrollment.sequence.timezone)
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

"""Nurture's RQ jobs: ids in, each in its own app context (see app.jobs), safe to run twice."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from app import mail
from app.auth.models import User
from app.db import db
from app.jobs import job
from app.leads.models import Lead
from app.mail.ledger import unique_key
from nurture import chunk, engine
from nurture import enrollment as enrollments
from nurture.enrollment import enroll
from nurture.models import LIVE_STATUSES, Enrollment, Sequence, SequenceStatus, Step
from nurture.render import build_email, preview_campaign, sample_lead

log = logging.getLogger(__name__)


@job
def tick() -> int:
    """Periodic: claim due enrollments and enqueue their steps."""
    return engine.tick()


@job
def run_step(enrollment_id: int, step_id: int) -> str:
    return engine.run_step(enrollment_id, step_id)


@job
def run_steps(pairs: list[list[int]] | list[tuple[int, int]]) -> dict[str, str]:
    """Run a chunk of (enrollment_id, step_id) steps, up to NURTURE_SEND_THREADS at a time, so
    one job serves many sends and their provider round trips overlap (`nurture.chunk`:
    the common email step on a lean path, anything else as `run_step` runs it). The ledger
    claim of each send is committed before its provider call. A step that raises is logged
    and left alone: its enrollment keeps its claim lease, and the tick offers it again when
    the lease runs out. The others in the chunk are not affected.
    Returns {"enrollment:step": outcome}.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    work = [(int(e), int(s)) for e, s in pairs]
    outcomes = chunk.run(app, work)
    return {f"{e}:{s}": outcome for (e, s), outcome in zip(work, outcomes)}


@job
def enroll_from_submission(submission_id: int) -> list[int]:
    """Submission listener (outbox rows written before listeners took batches)."""
    return enroll_from_submissions([submission_id])


def enroll_from_submissions(submission_ids: list[int]) -> list[int]:
    """Batch submission listener (one job per intake batch): enroll each submission's lead in
    every active sequence its form triggers, all at once (`enroll_many`) in one commit, and
    start their first steps at once (first email within seconds of the submit). Safe to run
    again: a lead already on a sequence is not enrolled twice (the rules refuse, or the
    partial unique index does when another writer got there first: then the batch is enrolled
    one by one and that one enrollment is skipped)."""
    from forms.models import Submission, SubmissionStatus

    accepted = (SubmissionStatus.ACCEPTED.value, SubmissionStatus.RELEASED.value)
    submissions = db.session.execute(
        sa.select(Submission.id, Submission.form_id, Submission.lead_id, Submission.campaign_id)
        .where(Submission.id.in_(submission_ids), Submission.lead_id.is_not(None),
               Submission.status.in_(accepted))
        .order_by(Submission.id)).all()
    triggered: dict[int, list[int]] = {}
    for form_id in sorted({row.form_id for row in submissions}):
        triggered[form_id] = list(db.session.scalars(
            sa.select(Sequence.id).where(Sequence.trigger_form_id == form_id,
                                         Sequence.status == SequenceStatus.ACTIVE.value)
            .order_by(Sequence.id)))
    wanted = [enrollments.Wanted(row.lead_id, sequence_id, f"form submission {row.id}",
                                 campaign_id=row.campaign_id)
              for row in submissions for sequence_id in triggered[row.form_id]]
    try:
        with db.session.begin_nested():
            made = enrollments.enroll_many(wanted)
    except IntegrityError:  # another writer enrolled one of them meanwhile: one by one
        made = [_enroll_one(w) for w in wanted]
    ids = [enrollment.id for enrollment in made if enrollment is not None]
    db.session.commit()
    engine.kick(ids, engine.FIRST_STEPS_QUEUE)
    return ids


def _enroll_one(wanted: enrollments.Wanted) -> Enrollment | None:
    """`enroll` in a savepoint of its own: None when refused, or when another writer enrolled
    the lead meanwhile (nothing to do)."""
    try:
        with db.session.begin_nested():
            return enroll(wanted.lead_id, wanted.sequence_id, wanted.source,
                          campaign_id=wanted.campaign_id)
    except IntegrityError:
        return None


def on_stage_change(stage_change_id: int) -> list[int]:
    """Stage listener: journeys whose exit or goal stage the lead just reached end now (not at
    their next step), and sequences triggered by entering this stage enroll the lead."""
    from app.leads.models import StageChange

    change = db.session.get(StageChange, stage_change_id)
    if change is None or change.lead.stage != change.to_stage:
        return []  # gone, or the lead has moved on since: the newer change decides
    live = db.session.scalars(
        sa.select(Enrollment).where(Enrollment.lead_id == change.lead_id,
                                    Enrollment.status.in_(LIVE_STATUSES))
    ).all()
    for enrollment in live:
        stop = engine.stop_reason(enrollment)
        if stop is not None:
            enrollments.end(enrollment, stop[0], finished=stop[1])
    sequences = db.session.scalars(
        sa.select(Sequence).where(Sequence.trigger_stage == change.to_stage,
                                  Sequence.status == SequenceStatus.ACTIVE.value)
        .order_by(Sequence.id)
    ).all()
    db.session.flush()
    ids = []
    for sequence in sequences:
        entered = enroll(change.lead_id, sequence.id, f"entered stage {change.to_stage}")
        if entered is not None:
            ids.append(entered.id)
    db.session.commit()
    engine.kick(ids, engine.FIRST_STEPS_QUEUE)
    return ids


@job
def send_test(step_id: int, user_id: int, lead_id: int | None = None,
              key: str | None = None, campaign_id: int | None = None) -> str:
    """'Send me a test': the step rendered for a lead (or a sample) with the campaign a
    preview shows (`preview_campaign`), to the marketer, once per `key` (`step-test:<random>`,
    made when it was asked for) through the mail ledger. No nurture ledger row, no event, and
    its unsubscribe link is inert."""
    step = db.session.get(Step, step_id)
    user = db.session.get(User, user_id)
    if step is None or user is None:
        return "gone"
    lead = db.session.get(Lead, lead_id) if lead_id else None
    campaign = preview_campaign(step, lead, campaign_id).context
    outcome = mail.deliver(key or unique_key("step-test"), lambda: build_email(
        step, lead or sample_lead(), send_id=None, enrollment_id=None, to=user.email,
        subject_prefix="[Test] ", preview=True, campaign=campaign))
    return outcome.message_id or outcome.status

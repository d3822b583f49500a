"""Nurture's RQ jobs: ids in, each in its own app context (see app.jobs), safe to run twice."""

from __future__ import annotations

import sqlalchemy as sa

from app import mail
from app.auth.models import User
from app.db import db
from app.jobs import job
from app.leads.models import Lead
from nurture import engine
from nurture import enrollment as enrollments
from nurture.enrollment import enroll
from nurture.models import LIVE_STATUSES, Enrollment, Sequence, SequenceStatus, Step
from nurture.render import build_email, sample_lead


@job
def tick() -> int:
    """Periodic: claim due enrollments and enqueue their steps."""
    return engine.tick()


@job
def run_step(enrollment_id: int, step_id: int) -> str:
    return engine.run_step(enrollment_id, step_id)


@job
def enroll_from_submission(submission_id: int) -> list[int]:
    """Submission listener: enroll the lead in every active sequence this form triggers, and
    start their first step at once (first email within seconds of the submit)."""
    from forms.models import Submission, SubmissionStatus

    submission = db.session.get(Submission, submission_id)
    accepted = (SubmissionStatus.ACCEPTED.value, SubmissionStatus.RELEASED.value)
    if submission is None or submission.lead_id is None or submission.status not in accepted:
        return []
    sequences = db.session.scalars(
        sa.select(Sequence).where(Sequence.trigger_form_id == submission.form_id,
                                  Sequence.status == SequenceStatus.ACTIVE.value)
        .order_by(Sequence.id)
    ).all()
    ids = []
    for sequence in sequences:
        enrollment = enroll(submission.lead_id, sequence.id,
                            f"form submission {submission.id}",
                            campaign_id=submission.campaign_id)
        if enrollment is not None:
            ids.append(enrollment.id)
    db.session.commit()
    engine.kick(ids)
    return ids


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
        enrollment = enroll(change.lead_id, sequence.id, f"entered stage {change.to_stage}")
        if enrollment is not None:
            ids.append(enrollment.id)
    db.session.commit()
    engine.kick(ids)
    return ids


@job
def send_test(step_id: int, user_id: int, lead_id: int | None = None) -> str:
    """'Send me a test': the step rendered for a lead (or a sample), to the marketer. No ledger,
    no event, and its unsubscribe link is inert."""
    step = db.session.get(Step, step_id)
    user = db.session.get(User, user_id)
    if step is None or user is None:
        return "gone"
    lead = db.session.get(Lead, lead_id) if lead_id else None
    email = build_email(step, lead or sample_lead(), send_id=None, enrollment_id=None,
                        to=user.email, subject_prefix="[Test] ", preview=True)
    return mail.backend().send(email)

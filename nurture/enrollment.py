"""Putting leads into sequences and taking them out. The API other packages call.

    enroll(lead_id, sequence_id, source) -> Enrollment | None

Nothing here commits: the caller owns the transaction. After committing new enrollments, call
`nurture.engine.kick([ids])` so the first step runs within seconds instead of at the next tick.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import record_event
from app.privacy import consent
from app.privacy.models import ConsentPurpose
from nurture.models import LIVE_STATUSES, Enrollment, EnrollmentStatus, Reenroll, Sequence
from nurture.suppression import why_not_emailable
from nurture.timing import lead_zone


def latest(lead_id: int, sequence_id: int) -> Enrollment | None:
    return db.session.scalar(
        sa.select(Enrollment).where(Enrollment.lead_id == lead_id,
                                    Enrollment.sequence_id == sequence_id)
        .order_by(Enrollment.id.desc()).limit(1)
    )


def refusal(lead: Lead | None, sequence: Sequence | None) -> str | None:
    """Why `lead` may not be enrolled in `sequence` now; None when it may."""
    if sequence is None or lead is None:
        return "no such lead or sequence"
    if not sequence.is_active:
        return "the sequence is not active"
    if not sequence.steps:
        return "the sequence has no steps"
    blocked = why_not_emailable(lead)
    if blocked:
        return f"the lead cannot be emailed ({blocked})"
    if sequence.required_purpose_id is not None and \
            not consent.has_consent(lead.id, sequence.required_purpose_id):
        purpose = db.session.get(ConsentPurpose, sequence.required_purpose_id)
        return f"the lead has not agreed to “{purpose.name if purpose else 'its purpose'}”"
    previous = latest(lead.id, sequence.id)
    if previous is not None:
        if previous.is_live:
            return "the lead is already in this sequence"
        if sequence.reenroll != Reenroll.AFTER_FINISHED.value:
            return "the sequence does not re-enroll leads"
        if previous.status != EnrollmentStatus.FINISHED.value:
            return f"the lead left this sequence before ({previous.exit_reason})"
    return None


def enroll(lead_id: int, sequence_id: int, source: str, *,
           campaign_id: int | None = None) -> Enrollment | None:
    """Start `lead_id` on `sequence_id`, or None when the rules say no (see `refusal`).

    The database allows one live enrollment per lead and sequence (a partial unique index): if
    two writers race, the second flush raises IntegrityError and its transaction must be rolled
    back; a retried job then finds the first enrollment and returns None.
    """
    lead = db.session.get(Lead, lead_id)
    sequence = db.session.get(Sequence, sequence_id)
    if refusal(lead, sequence) is not None:
        return None
    assert lead is not None and sequence is not None  # `refusal` says why not otherwise
    first = min(sequence.steps, key=lambda s: s.position)
    now = utcnow()
    enrollment = Enrollment(lead_id=lead.id, sequence_id=sequence.id, step_id=first.id,
                            status=EnrollmentStatus.ACTIVE.value, next_run_at=now,
                            step_entered_at=now, source=source[:200], campaign_id=campaign_id)
    db.session.add(enrollment)
    db.session.flush()
    record_event(lead, "nurture_enrolled",
                 data={"sequence_id": sequence.id, "sequence": sequence.name,
                       "enrollment_id": enrollment.id, "source": source})
    return enrollment


def end_for_purpose(lead: Lead, purpose: ConsentPurpose) -> int:
    """The lead withdrew consent to `purpose`: every live journey that needs it ends (a consent
    withdrawal listener, in the caller's transaction). Returns how many ended."""
    live = db.session.scalars(
        sa.select(Enrollment).join(Sequence, Enrollment.sequence_id == Sequence.id)
        .where(Enrollment.lead_id == lead.id, Enrollment.status.in_(LIVE_STATUSES),
               Sequence.required_purpose_id == purpose.id)
    ).all()
    for enrollment in live:
        end(enrollment, f"withdrew consent to “{purpose.name}”", finished=False)
    return len(live)


def end(enrollment: Enrollment, reason: str, *, finished: bool) -> None:
    """Finish (the journey is complete) or exit (it was cut short), saying why."""
    if not enrollment.is_live:
        return
    enrollment.status = (EnrollmentStatus.FINISHED if finished else EnrollmentStatus.EXITED).value
    enrollment.exit_reason = reason[:300]
    enrollment.ended_at = utcnow()
    enrollment.next_run_at = None
    record_event(enrollment.lead, ended_event_type(finished),
                 data=ended_event_data(enrollment.id, enrollment.sequence_id, reason),
                 flush=False)  # written with the caller's commit, with its other changes


def ended_event_type(finished: bool) -> str:
    return "nurture_finished" if finished else "nurture_exited"


def ended_event_data(enrollment_id: int, sequence_id: int, reason: str) -> dict:
    """The data of the lead's event for a journey that ended (see `end`)."""
    return {"sequence_id": sequence_id, "enrollment_id": enrollment_id, "reason": reason}


def mark_replied(lead: Lead, source: str) -> int:
    """The lead answered an email: a person talks to them now, so every live journey ends
    (reason "replied"). Records an `email_replied` event. Returns how many ended. The caller
    commits."""
    live = db.session.scalars(
        sa.select(Enrollment).where(Enrollment.lead_id == lead.id,
                                    Enrollment.status.in_(LIVE_STATUSES))
    ).all()
    record_event(lead, "email_replied", data={"source": source[:200]})
    for enrollment in live:
        end(enrollment, "replied", finished=False)
    return len(live)


def pause(enrollment: Enrollment) -> None:
    if enrollment.status == EnrollmentStatus.ACTIVE.value:
        enrollment.status = EnrollmentStatus.PAUSED.value
        enrollment.next_run_at = None


def resume(enrollment: Enrollment) -> None:
    """Continue where it stopped; the step runs at the next tick (waits are not replayed)."""
    if enrollment.status == EnrollmentStatus.PAUSED.value:
        enrollment.status = EnrollmentStatus.ACTIVE.value
        enrollment.next_run_at = utcnow()


def zone_of(enrollment: Enrollment) -> ZoneInfo:
    """The time zone this enrollment's send windows and weekday waits use: the lead's own (an
    explicit zone, else their country's), else the campaign's default, else the sequence's."""
    campaign_zone = None
    if enrollment.campaign_id is not None:
        from campaigns.models import Campaign

        campaign_zone = db.session.scalar(sa.select(Campaign.timezone)
                                          .where(Campaign.id == enrollment.campaign_id))
    return lead_zone(enrollment.lead, campaign_zone, enrollment.sequence.timezone)

"""Putting leads into sequences and taking them out. The API other packages call.

    enroll(lead_id, sequence_id, source) -> Enrollment | None
    enroll_many([Wanted(lead_id, sequence_id, source), ...]) -> [Enrollment | None, ...]

Nothing here commits: the caller owns the transaction. After committing new enrollments, call
`nurture.engine.kick([ids])` so the first step runs within seconds instead of at the next tick.
"""

from __future__ import annotations

from collections.abc import Sequence as Many
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import record_event
from app.privacy import consent
from app.privacy.models import ConsentPurpose, ConsentRecord
from nurture.models import (
    LIVE_STATUSES,
    Enrollment,
    EnrollmentStatus,
    Reenroll,
    Sequence,
    Suppression,
)
from nurture.suppression import blocked_reason
from nurture.timing import lead_zone


def latest(lead_id: int, sequence_id: int) -> Enrollment | None:
    return db.session.scalar(
        sa.select(Enrollment).where(Enrollment.lead_id == lead_id,
                                    Enrollment.sequence_id == sequence_id)
        .order_by(Enrollment.id.desc()).limit(1)
    )


def refusal(lead: Lead | None, sequence: Sequence | None) -> str | None:
    """Why `lead` may not be enrolled in `sequence` now; None when it may."""
    if lead is None or sequence is None or not sequence.is_active or not sequence.steps:
        return _refusal(lead, sequence, None, None, None)  # says which, reading nothing more
    suppression = db.session.scalar(
        sa.select(Suppression.reason).where(Suppression.email == lead.email))
    consented = None
    if sequence.required_purpose_id is not None:
        consented = consent.has_consent(lead.id, sequence.required_purpose_id)
    return _refusal(lead, sequence, suppression, consented, latest(lead.id, sequence.id))


def _refusal(lead: Lead | None, sequence: Sequence | None, suppression: str | None,
             consented: bool | None, previous: Enrollment | None) -> str | None:
    """`refusal` on what the caller read: the reason of the lead's suppression row (None when
    there is none), whether the lead agreed to the sequence's required purpose (None when it
    requires none) and the lead's latest enrollment in the sequence."""
    if sequence is None or lead is None:
        return "no such lead or sequence"
    if not sequence.is_active:
        return "the sequence is not active"
    if not sequence.steps:
        return "the sequence has no steps"
    blocked = blocked_reason(lead, suppression)
    if blocked:
        return f"the lead cannot be emailed ({blocked})"
    if consented is False:
        purpose = db.session.get(ConsentPurpose, sequence.required_purpose_id)
        return f"the lead has not agreed to “{purpose.name if purpose else 'its purpose'}”"
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
    enrollment = _new(lead, sequence, source, campaign_id)
    db.session.add(enrollment)
    db.session.flush()
    _record_enrolled(lead, sequence, enrollment, source)
    db.session.flush()
    return enrollment


@dataclass(frozen=True)
class Wanted:
    """One enrollment `enroll_many` is asked for."""

    lead_id: int
    sequence_id: int
    source: str
    campaign_id: int | None = None


def enroll_many(wanted: Many[Wanted]) -> list[Enrollment | None]:
    """`enroll` for each of `wanted` (one result each, in that order; a lead wanted twice in
    one sequence is enrolled once, for the first ask), by the same rules: what they read is loaded for all of them in five
    statements, the enrollments are written in one INSERT and their events in one more. At 50
    submits a second, one by one (nine round trips each) was the first email's slowest hop.

    Nothing commits. Raises IntegrityError when a concurrent writer enrolled one of these leads
    meanwhile (the partial unique index): the caller rolls back and goes one by one."""
    if not wanted:
        return []
    lead_ids = sorted({w.lead_id for w in wanted})
    sequence_ids = sorted({w.sequence_id for w in wanted})
    leads = {lead.id: lead for lead in db.session.scalars(
        sa.select(Lead).where(Lead.id.in_(lead_ids)))}
    sequences = {sequence.id: sequence for sequence in db.session.scalars(
        sa.select(Sequence).where(Sequence.id.in_(sequence_ids))
        .options(selectinload(Sequence.steps)))}
    suppressed: dict[str, str] = {}
    for email, reason in db.session.execute(
            sa.select(Suppression.email, Suppression.reason)
            .where(Suppression.email.in_(sorted({lead.email for lead in leads.values()})))):
        suppressed.setdefault(email, reason)
    consented = _latest_consents(lead_ids, {s.required_purpose_id for s in sequences.values()
                                            if s.required_purpose_id is not None})
    previous: dict[tuple[int, int], Enrollment] = {}
    for earlier in db.session.scalars(
            sa.select(Enrollment).where(Enrollment.lead_id.in_(lead_ids),
                                        Enrollment.sequence_id.in_(sequence_ids))
            .order_by(Enrollment.id)):
        previous[(earlier.lead_id, earlier.sequence_id)] = earlier  # the latest one stays

    # Written in (lead, sequence) order, whatever order they were asked in: two batches that
    # share leads take the unique index's locks in the same order (no deadlock); the same pair
    # asked twice keeps its first ask (a stable sort).
    out: list[Enrollment | None] = [None] * len(wanted)
    made: list[tuple[Lead, Sequence, Enrollment, str]] = []
    for index in sorted(range(len(wanted)),
                        key=lambda i: (wanted[i].lead_id, wanted[i].sequence_id)):
        w = wanted[index]
        lead, sequence = leads.get(w.lead_id), sequences.get(w.sequence_id)
        purpose = sequence.required_purpose_id if sequence is not None else None
        why = _refusal(lead, sequence, suppressed.get(lead.email) if lead else None,
                       None if purpose is None else consented.get((w.lead_id, purpose), False),
                       previous.get((w.lead_id, w.sequence_id)))
        if why is not None:
            continue
        assert lead is not None and sequence is not None
        enrollment = _new(lead, sequence, w.source, w.campaign_id)
        previous[(lead.id, sequence.id)] = enrollment  # live: the same pair again is refused
        made.append((lead, sequence, enrollment, w.source))
        out[index] = enrollment
    if made:
        db.session.add_all([enrollment for _, _, enrollment, _ in made])
        db.session.flush()
        for lead, sequence, enrollment, source in made:
            _record_enrolled(lead, sequence, enrollment, source)
        db.session.flush()
    return out


def _latest_consents(lead_ids: list[int], purpose_ids: set[int],
                     ) -> dict[tuple[int, int], bool]:
    """(lead, purpose) -> granted, from each pair's latest consent record (`has_consent`)."""
    if not purpose_ids:
        return {}
    rows = db.session.execute(
        sa.select(ConsentRecord.lead_id, ConsentRecord.purpose_id, ConsentRecord.granted)
        .where(ConsentRecord.lead_id.in_(lead_ids),
               ConsentRecord.purpose_id.in_(sorted(purpose_ids)))
        .order_by(ConsentRecord.id))
    return {(lead_id, purpose_id): bool(granted) for lead_id, purpose_id, granted in rows}


def _new(lead: Lead, sequence: Sequence, source: str, campaign_id: int | None) -> Enrollment:
    first = min(sequence.steps, key=lambda s: s.position)
    now = utcnow()
    return Enrollment(lead_id=lead.id, sequence_id=sequence.id, step_id=first.id,
                      status=EnrollmentStatus.ACTIVE.value, next_run_at=now,
                      step_entered_at=now, source=source[:200], campaign_id=campaign_id)


def _record_enrolled(lead: Lead, sequence: Sequence, enrollment: Enrollment,
                     source: str) -> None:
    record_event(lead, "nurture_enrolled",
                 data={"sequence_id": sequence.id, "sequence": sequence.name,
                       "enrollment_id": enrollment.id, "source": source},
                 flush=False)


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


def end_without_purpose(sequence: Sequence) -> int:
    """The sequence now needs its purpose: every live journey of a lead who has not agreed to
    it ends, as a withdrawal would end it (in the caller's transaction). Returns how many."""
    if sequence.required_purpose_id is None:
        return 0
    purpose = db.session.get(ConsentPurpose, sequence.required_purpose_id)
    live = db.session.scalars(
        sa.select(Enrollment).where(Enrollment.sequence_id == sequence.id,
                                    Enrollment.status.in_(LIVE_STATUSES))).all()
    consented = _latest_consents(sorted({e.lead_id for e in live}),
                                 {sequence.required_purpose_id})
    ended = 0
    for enrollment in live:
        if not consented.get((enrollment.lead_id, sequence.required_purpose_id), False):
            end(enrollment, f"has not agreed to “{purpose.name if purpose else 'its purpose'}”",
                finished=False)
            ended += 1
    return ended


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

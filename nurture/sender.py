"""Running an email step: window, cap, ledger claim, last-moment checks, render, send, record.

Order matters: the send window and frequency cap only postpone (the cap is decided under a lock
on the lead's row, so two workers cannot both pass it); the ledger claim is committed
before the provider is called; suppression is read again *after* the claim so an unsubscribe
that arrived while the job sat in the queue still stops the email.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from app import mail
from app.db import db, utcnow
from app.leads.models import Lead
from nurture import enrollment as enrollments
from nurture import ledger
from nurture.models import Enrollment, FailurePolicy, Send, SendStatus, Step, Suppression
from nurture.render import TemplateProblem, build_email
from nurture.steps import following
from nurture.suppression import blocked_reason
from nurture.timing import next_opening


def _setting(name: str) -> int:
    return int(current_app.config[name])


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential back-off per attempt, never sooner than the provider asked."""
    base = _setting("NURTURE_RETRY_BASE_SECONDS") * 2 ** max(0, attempts - 1)
    delay = min(base, _setting("NURTURE_RETRY_MAX_SECONDS"))
    return timedelta(seconds=max(delay, retry_after or 0))


def cap_until(enrollment: Enrollment, step: Step, now: datetime) -> datetime | None:
    """When the lead's frequency cap allows the next nurture email, None if it does now."""
    hours = enrollment.sequence.frequency_cap_hours or 0
    if hours <= 0:
        return None
    last = db.session.scalar(last_email_statement(enrollment.lead_id, enrollment.id, step.id))
    return cap_end(last, hours, now)


def last_email_statement(lead_id: int, enrollment_id: int, step_id: int) -> sa.Select:
    """When the lead's latest nurture email (sent, or possibly sent) went, other than this
    step's own."""
    return sa.select(sa.func.max(sa.func.coalesce(Send.sent_at, Send.claimed_at))).where(
        Send.lead_id == lead_id,
        Send.status.in_([SendStatus.SENT.value, SendStatus.CLAIMED.value,
                         SendStatus.UNKNOWN.value]),
        sa.not_(sa.and_(Send.enrollment_id == enrollment_id, Send.step_id == step_id)),
    )


def lock_lead_statement(lead_id: int) -> sa.Select:
    """Locks the lead's row until the transaction ends (PostgreSQL; SQLite has one writer):
    one frequency-cap decision per lead at a time."""
    return sa.select(Lead.id).where(Lead.id == lead_id).with_for_update()


def cap_end(last: datetime | None, hours: int, now: datetime) -> datetime | None:
    """When a cap of `hours` after the email at `last` ends, None if it has ended."""
    if last is None:
        return None
    if last.tzinfo is None:  # func.max loses the column type on some databases

        last = last.replace(tzinfo=UTC)
    allowed = last + timedelta(hours=hours)
    return allowed if allowed > now else None


def _postpone(enrollment: Enrollment, until: datetime, why: str) -> str:
    enrollment.next_run_at = until
    db.session.commit()
    return f"postponed ({why}) until {until.isoformat()}"


def run_email_step(enrollment: Enrollment, step: Step) -> str:
    """Run an email step. Its commits do not expire the session's objects: what this step wrote
    it already holds, and what others may change meanwhile (the lead, its suppression, the
    enrollment) is read again on purpose right after the claim (`_recheck`). Everything is
    expired at the end, as a commit would have, for whoever uses the session next."""
    session = db.session()
    expire_on_commit = session.expire_on_commit
    session.expire_on_commit = False
    try:
        return _run_email_step(enrollment, step)
    finally:
        session.expire_on_commit = expire_on_commit
        session.expire_all()


def _recheck(enrollment: Enrollment) -> str | None:
    """After the claim: the enrollment and its lead as they are now, and whether the lead may
    still be emailed (an unsubscribe while the job sat in the queue stops it). One SELECT."""
    row = db.session.execute(
        sa.select(Enrollment, Lead, Suppression.reason)
        .join(Lead, Lead.id == Enrollment.lead_id)
        .outerjoin(Suppression, Suppression.email == Lead.email)
        .where(Enrollment.id == enrollment.id)
        .execution_options(populate_existing=True)
    ).one()
    return blocked_reason(row[1], row[2])


def _run_email_step(enrollment: Enrollment, step: Step) -> str:
    from nurture.engine import advance

    now = utcnow()
    sequence = enrollment.sequence
    tz = enrollments.zone_of(enrollment)
    opening = next_opening(now, tz, sequence.window_days or [], sequence.window_start_hour,
                           sequence.window_end_hour)
    if opening is None:
        enrollments.end(enrollment, "the send window never opens", finished=False)
        db.session.commit()
        return "ended: no send window"
    if opening > now:
        return _postpone(enrollment, opening, "outside the send window")
    if (sequence.frequency_cap_hours or 0) > 0:
        # One cap decision per lead at a time: two workers sending this lead's steps of two
        # sequences would otherwise both find no recent email. PostgreSQL holds the row lock
        # until the ledger claim (or the postponement) commits; SQLite has a single writer.
        db.session.execute(lock_lead_statement(enrollment.lead_id))
    capped = cap_until(enrollment, step, now)
    if capped is not None:
        return _postpone(enrollment, capped, "frequency cap")

    claim = ledger.claim(enrollment, step)  # commits
    if claim.outcome == "busy":
        return "another worker is sending this step"
    if claim.outcome == "done":
        advance(enrollment, following(step))
        return "already sent"
    assert claim.send is not None  # every outcome but "busy" comes with its ledger row
    if claim.outcome == "failed":
        return _after_failure(enrollment, step, claim.send)
    if claim.outcome == "unknown":
        return _wait_for_reconciliation(enrollment, step, claim.send)
    return _send(enrollment, step, claim.send)


def _send(enrollment: Enrollment, step: Step, send: Send) -> str:
    from nurture.engine import advance

    blocked = _recheck(enrollment)  # what is true now, not when the job was enqueued
    lead = enrollment.lead
    if blocked:
        ledger.mark_failed(send, f"not sent: {blocked}")
        enrollments.end(enrollment, blocked, finished=False)
        db.session.commit()
        return f"not sent: {blocked}"
    try:
        email = build_email(step, lead, send_id=send.id, enrollment_id=enrollment.id,
                            campaign_id=enrollment.campaign_id)
    except TemplateProblem as exc:
        ledger.mark_failed(send, f"template: {exc}")
        db.session.commit()
        return _after_failure(enrollment, step, send)
    db.session.commit()  # the tracked links exist before anyone can click them
    try:
        message_id = mail.transmit(email, key=ledger.sent_event_key(send.id))
    except mail.MailError as exc:
        return after_mail_error(enrollment, step, send, exc)
    ledger.mark_sent(send, message_id)
    ledger.record_sent_event(send)
    advance(enrollment, following(step))  # commits the send, its event and the move together
    return "sent"


def after_mail_error(enrollment: Enrollment, step: Step, send: Send,
                     exc: mail.MailError) -> str:
    """The provider did not take the email: unknown (it may have it), failed, or a retry after
    a back-off. Commits."""
    if exc.uncertain:
        ledger.mark_unknown(send, str(exc))
        db.session.commit()
        return _wait_for_reconciliation(enrollment, step, send)
    if exc.permanent or send.attempts >= _setting("NURTURE_MAX_SEND_ATTEMPTS"):
        ledger.mark_failed(send, str(exc))
        db.session.commit()
        return _after_failure(enrollment, step, send)
    ledger.mark_retry(send, str(exc))
    enrollment.next_run_at = utcnow() + backoff(send.attempts, exc.retry_after)
    db.session.commit()
    return f"retry {send.attempts} at {enrollment.next_run_at.isoformat()}"


def _after_failure(enrollment: Enrollment, step: Step, send: Send) -> str:
    from nurture.engine import advance

    if enrollment.sequence.on_permanent_failure == FailurePolicy.STOP.value:
        enrollments.end(enrollment, f"email failed: {send.error}", finished=False)
        db.session.commit()
        return "failed: journey stopped"
    advance(enrollment, following(step))
    return "failed: journey continues"


def _wait_for_reconciliation(enrollment: Enrollment, step: Step, send: Send) -> str:
    """Never re-send an attempt whose fate is unknown. Wait for provider events; when none come
    in time, assume it went out (one email too few beats one too many) and move on."""
    from nurture.engine import advance

    now = utcnow()
    waited_since = send.updated_at or send.claimed_at or now
    give_up = waited_since + timedelta(seconds=_setting("NURTURE_UNKNOWN_WAIT_SECONDS"))
    if now >= give_up:
        send.error = (send.error or "") + "; no provider event came: assumed sent"
        advance(enrollment, following(step))
        return "unknown: assumed sent"
    recheck = now + timedelta(seconds=_setting("NURTURE_UNKNOWN_RECHECK_SECONDS"))
    return _postpone(enrollment, min(recheck, give_up), "waiting for provider events")

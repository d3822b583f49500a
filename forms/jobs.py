"""Background jobs of the forms package. Ids in; each runs in its own app context (`@job`)."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import render_template
from redis.exceptions import RedisError

from app import mail, queue
from app.db import db, utcnow
from app.jobs import job
from app.leads.service import record_event
from app.logs import brief
from forms.confirm import confirm_url
from forms.models import Form, Submission, SubmissionStatus

log = logging.getLogger(__name__)

EXPIRE_BATCH = 500


@job
def send_confirmation(submission_id: int) -> str | None:
    """Email the double opt-in link. Skips submissions that no longer wait for it."""
    submission = db.session.get(Submission, submission_id)
    waiting = (SubmissionStatus.PENDING.value, SubmissionStatus.RELEASED.value)
    if submission is None or submission.status not in waiting \
            or submission.confirmed_at is not None or submission.lead is None:
        return None
    lead = submission.lead

    def build() -> mail.Email:
        context = {"form": submission.form, "lead": lead, "url": confirm_url(submission),
                   "hours": submission.form.confirmation_expiry_hours}
        # Only the validated address goes into a header; the name a lead typed stays in the body.
        return mail.new_email(
            to=lead.email_display,
            subject="Please confirm your subscription",
            html=render_template("forms/mail/confirm.html", **context),
            text=render_template("forms/mail/confirm.txt", **context),
            custom_args={"submission_id": str(submission.id)},
            categories=["confirmation"],
        )

    # Once per submission, through the mail ledger (a retry is the outbox's, on RetryLater).
    outcome = mail.deliver(f"confirm:{submission.id}", build, lead_id=lead.id)
    return outcome.message_id if outcome.status == "sent" else None


@job
def expire_confirmations() -> int:
    """Mark pending submissions older than their form's expiry as expired. Periodic, idempotent."""
    now = utcnow()
    expired = 0
    forms = db.session.scalars(
        sa.select(Form).where(Form.id.in_(
            sa.select(Submission.form_id).where(
                Submission.status == SubmissionStatus.PENDING.value).distinct()))
    ).all()
    for form in forms:
        cutoff = now - timedelta(hours=form.confirmation_expiry_hours)
        rows = db.session.scalars(
            sa.select(Submission).where(Submission.form_id == form.id,
                                        Submission.status == SubmissionStatus.PENDING.value,
                                        Submission.created_at < cutoff)
            .order_by(Submission.id).limit(EXPIRE_BATCH)
        ).all()
        for submission in rows:
            submission.status = SubmissionStatus.EXPIRED.value
            record_event(submission.lead, "subscription_expired",
                         campaign_id=submission.campaign_id,
                         data={"form_id": form.id, "submission_id": submission.id,
                               "reason": f"not confirmed within "
                                         f"{form.confirmation_expiry_hours} hours"},
                         dedupe_key=f"subscription_expired:{submission.id}")
            expired += 1
        db.session.commit()
    return expired


@job
def process_intake() -> int:
    """Turn new intake rows into leads (kicked after each submit, swept by the scheduler);
    replays the spill journal first. Returns the rows taken."""
    from forms import intake, processor, spill

    try:  # before the rows are taken: a submit committed after this kicks a new run
        queue.connection().delete(intake.KICK_MARK)
    except RedisError as exc:
        log.warning("intake: kick mark not cleared (%s); it expires", exc)
    try:
        spill.replay()
    except (*intake.REFUSED, OSError) as exc:  # the database or the disk still refuses:
        log.warning("intake spill: replay failed (%s)", brief(exc))  # the rows wait in the journal
        db.session.rollback()
    return processor.drain()

"""Alert emails to sales: a row per (stage change, recipient, kind), committed before the send,
and a send job that talks to the provider at most once per successful delivery.

Provider failures are retried with back-off by the outbox's RQ retry; after the last try the
alert is `undelivered` and shows so on the lead page and in the queue. A worker that died in the
middle of a send leaves the row `unknown`: it is never sent blindly a second time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, render_template
from sqlalchemy.exc import IntegrityError

from app import mail, outbox
from app.db import db, rows_matched, utcnow
from app.leads.models import Lead
from app.leads.service import record_event
from app.leads.story import story
from app.mail import MailError
from app.sales import links
from app.sales.models import Alert, Assignment

log = logging.getLogger(__name__)

SUBJECTS = {
    "mql": "New MQL for you: {name}",
    "reminder": "Reminder: {name} is still waiting for an answer",
    "escalation": "Escalation: {name} has waited past the sales SLA",
}


def create(kind: str, recipient: str, *, assignment: Assignment | None = None,
           lead_id: int | None = None, user_id: int | None = None, key: str,
           data: dict[str, Any] | None = None) -> Alert | None:
    """Persist an alert once per key and schedule its send. None when it already existed."""
    if db.session.scalar(sa.select(Alert.id).where(Alert.key == key)) is not None:
        return None
    alert = Alert(key=key, kind=kind, recipient=recipient, user_id=user_id,
                  assignment_id=assignment.id if assignment else None,
                  lead_id=lead_id if lead_id is not None else (
                      assignment.lead_id if assignment else None),
                  data=dict(data or {}), status="pending", attempts=0, created_at=utcnow())
    try:
        with db.session.begin_nested():
            db.session.add(alert)
    except IntegrityError:  # another worker wrote it first
        return None
    outbox.add("app.sales.alerts.send", alert.id, queue_name="mail",
               dedupe_key=f"sales-alert:{alert.id}")
    return alert


def alert_key(kind: str, assignment: Assignment, recipient: str) -> str:
    return f"{kind}:{assignment.stage_change_id}:{recipient.lower()}"


def _claim(alert: Alert) -> str:
    """Move the alert to `sending` (committed). Returns 'ours' or why not."""
    if alert.status in ("sent", "undelivered", "unknown"):
        return alert.status
    now = utcnow()
    if alert.status == "sending":
        timeout = timedelta(seconds=int(current_app.config["SALES_ALERT_CLAIM_TIMEOUT"]))
        if alert.claimed_at and alert.claimed_at > now - timeout:
            return "busy"
        _set(alert, "sending", status="unknown",
             last_error="the worker stopped during the send; not sent again blindly")
        return "unknown"
    if _set(alert, alert.status, status="sending", claimed_at=now, attempts=Alert.attempts + 1):
        return "ours"
    # Someone else moved it first (`_set` refreshed the row): say where it stands.
    return alert.status if alert.status in ("sent", "undelivered", "unknown") else "busy"


def _set(alert: Alert, expected: str, **values: Any) -> bool:
    """Compare-and-set on the status, committed: True when this process made the change."""
    matched = rows_matched(
        sa.update(Alert).where(Alert.id == alert.id, Alert.status == expected)
        .values(**values).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(alert)
    return matched == 1


def build_email(alert: Alert) -> mail.Email:
    if alert.kind == "digest":
        from app.sales.digest import digest_email

        return digest_email(alert)
    lead = db.session.get_one(Lead, alert.lead_id)
    assignment = alert.assignment
    base = current_app.config["BASE_URL"]
    context = {
        "alert": alert, "lead": lead, "assignment": assignment, "sections": story(lead),
        "accept_url": links.absolute_url("accept", alert.id, lead.id),
        "reject_url": links.absolute_url("reject", alert.id, lead.id),
        "lead_url": f"{base}/admin/leads/{lead.id}", "queue_url": f"{base}/sales/queue",
        "owner": assignment.user if assignment else None,
        "sla_hours": alert.data.get("sla_hours"),
    }
    return mail.new_email(
        to=alert.recipient,
        subject=SUBJECTS[alert.kind].format(name=lead.display_name),
        html=render_template("sales/mail/alert.html", **context),
        text=render_template("sales/mail/alert.txt", **context),
        categories=["sales-alert"],
        custom_args={"sales_alert_id": str(alert.id)},
    )


def send(alert_id: int) -> str:
    """The outbox job: send one alert, once. Raises on a retryable failure (RQ retries)."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        return "missing"
    claim = _claim(alert)
    if claim != "ours":
        return claim
    max_attempts = int(current_app.config["SALES_ALERT_MAX_ATTEMPTS"])
    email = build_email(alert)  # a bug here is a failed job, never an "undelivered" alert
    try:
        message_id = mail.backend().send(email)
    except MailError as exc:
        if exc.uncertain:  # SendGrid may have it: never send the alert twice
            alert.status, alert.last_error = "unknown", str(exc)[:2000]
            db.session.commit()
            return "unknown"
        permanent = exc.permanent
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if permanent or alert.attempts >= max_attempts:
            alert.status, alert.last_error = "undelivered", error
            if alert.lead_id:
                record_event(db.session.get(Lead, alert.lead_id), "sales_alert_undelivered",
                             data={"alert_id": alert.id, "kind": alert.kind,
                                   "recipient": alert.recipient, "error": error[:300]},
                             dedupe_key=f"sales-alert-undelivered:{alert.id}")
            db.session.commit()
            log.warning("sales alert %s undelivered after %s attempt(s): %s", alert.id,
                        alert.attempts, error)
            return "undelivered"
        alert.status, alert.last_error = "retry", error
        db.session.commit()
        raise
    alert.status, alert.sent_at = "sent", utcnow()
    alert.provider_message_id = (message_id or "")[:200] or None
    alert.last_error = None
    if alert.lead_id:
        record_event(db.session.get(Lead, alert.lead_id), "sales_alert_sent",
                     data={"alert_id": alert.id, "kind": alert.kind,
                           "recipient": alert.recipient},
                     dedupe_key=f"sales-alert-sent:{alert.id}")
    db.session.commit()
    return "sent"

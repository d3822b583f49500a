"""Alert emails to sales: a row per (stage change, recipient, kind), committed before the send,
and a send job that sends it through the mail ledger (`app.mail.deliver`, key `alert:<id>`):
at most once.

Provider failures are retried with back-off by the outbox; after the last try the alert is
`undelivered` and shows so on the lead page and in the queue. A send whose answer never came
(or whose worker died in the middle) leaves the alert `unknown`: it is never sent blindly a
second time, and SendGrid's events settle it.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import current_app, render_template
from sqlalchemy.exc import IntegrityError

from app import mail, outbox
from app.db import db, utcnow
from app.jobs import RetryLater
from app.leads.models import Lead
from app.leads.service import record_event
from app.leads.story import story
from app.mail import ledger
from app.mail.ledger import MailDelivery
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
    from app.sales.slack import target_url

    if target_url(alert):
        outbox.add("app.sales.slack.post", alert.id, dedupe_key=f"sales-slack:{alert.id}")
    return alert


def alert_key(kind: str, assignment: Assignment, recipient: str) -> str:
    return f"{kind}:{assignment.stage_change_id}:{recipient.lower()}"


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
    """The outbox job: send one alert, once, through the mail ledger (key `alert:<id>`).
    Raises RetryLater on a refusal worth retrying (the outbox retries after a back-off)."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        return "missing"
    if alert.status in ("sent", "undelivered", "unknown"):
        return alert.status
    max_attempts = int(current_app.config["SALES_ALERT_MAX_ATTEMPTS"])
    key = f"alert:{alert.id}"
    try:
        # A bug in build_email is a failed job, never an "undelivered" alert.
        outcome = mail.deliver(key, lambda: build_email(alert), lead_id=alert.lead_id,
                               max_attempts=max_attempts)
    except RetryLater:
        _follow(alert, ledger.find(key))
        db.session.commit()
        raise
    if outcome.status == "busy":
        return "busy"
    _follow(alert, outcome.row)
    db.session.commit()
    return alert.status


def _follow(alert: Alert, row: MailDelivery | None) -> None:
    """The alert says what its ledger row says (and the lead's timeline records the end of
    it): sent, retry, undelivered (refused, or out of attempts) or unknown (no answer came;
    SendGrid's events settle it, see `on_settled`). The caller commits."""
    if row is None:
        return
    status = {"sent": "sent", "retry": "retry", "failed": "undelivered",
              "unknown": "unknown"}.get(row.status)
    if status is None:
        return
    alert.status, alert.attempts, alert.claimed_at = status, row.attempts, row.claimed_at
    alert.last_error = None if status == "sent" else row.error
    if status == "sent":
        alert.sent_at = row.sent_at
        alert.provider_message_id = row.provider_message_id
    if status not in ("sent", "undelivered") or alert.lead_id is None:
        return
    lead = db.session.get(Lead, alert.lead_id)
    data = {"alert_id": alert.id, "kind": alert.kind, "recipient": alert.recipient}
    if status == "sent":
        record_event(lead, "sales_alert_sent", data=data,
                     dedupe_key=f"sales-alert-sent:{alert.id}")
    else:
        record_event(lead, "sales_alert_undelivered",
                     data={**data, "error": (row.error or "")[:300]},
                     dedupe_key=f"sales-alert-undelivered:{alert.id}")
        log.warning("sales alert %s undelivered after %s attempt(s): %s", alert.id,
                    alert.attempts, row.error)


def on_settled(row: MailDelivery) -> None:
    """SendGrid's events settled an alert whose answer never came (a mail ledger listener):
    the alert, the queue and the lead page say so. The webhook's transaction commits."""
    _, _, alert_id = row.key.partition(":")
    alert = db.session.get(Alert, int(alert_id)) if alert_id.isdigit() else None
    if alert is not None and alert.status not in ("sent", "undelivered"):
        _follow(alert, row)

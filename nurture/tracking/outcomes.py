"""What provider events do beyond the timeline: settle the send ledger, suppress addresses,
take leads out of their sequences. Used by the webhook; nothing here commits."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from app.db import db, utcnow
from app.leads.models import Lead
from nurture.models import Send, SendStatus, SuppressionReason
from nurture.suppression import suppress

EXIT_REASONS = {"bounce": "email bounced", "spamreport": "marked our email as spam",
                "unsubscribe": "unsubscribed (reported by SendGrid)"}


def dropped_reason(reason: str) -> str:
    """SendGrid drops for a reason ("Bounced Address", "Unsubscribed Address", "Spam Reporting
    Address", "Invalid", ...); the suppression keeps the closest of ours."""
    lowered = reason.lower()
    if "unsubscribe" in lowered:
        return "unsubscribe"
    if "spam" in lowered:
        return "spamreport"
    return "bounce"


def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError:
        return None


class Outcomes:
    def __init__(self) -> None:
        self._suppress: dict[tuple[int | None, str], tuple[str, str]] = {}
        self._reconcile: list[tuple[int, str, Any, datetime]] = []
        self.reputation_changed = False

    def reconcile(self, send_id: int, status: str, message_id: Any, at: datetime) -> None:
        self._reconcile.append((send_id, status, message_id, at))

    def suppress(self, lead_id: int | None, email: str, reason: str, source: str) -> None:
        if reason == "spamreport":
            self.reputation_changed = True
        key = (lead_id, email)
        if key not in self._suppress:  # the first reason wins, as in the suppression list
            self._suppress[key] = (reason, source)

    def apply(self) -> None:
        for send_id, status, message_id, at in self._reconcile:
            _reconcile(send_id, status, message_id, at)
        exit_all = _optional("nurture.unsubscribe", "exit_all")
        for (lead_id, email), (reason, source) in self._suppress.items():
            lead = db.session.get(Lead, lead_id) if lead_id else None
            address = lead.email if lead is not None else email
            if address:
                suppress(address, SuppressionReason(reason), source)
            if lead is None:
                continue
            if reason == "bounce" and lead.bounced_at is None:
                lead.bounced_at = utcnow()
            if reason in ("unsubscribe", "spamreport") and lead.unsubscribed_at is None:
                lead.unsubscribed_at = utcnow()
            if exit_all is not None:
                exit_all(lead.id, EXIT_REASONS[reason])
            else:  # pragma: no cover - before the enrollment API existed
                _exit_directly(lead.id, EXIT_REASONS[reason])
        db.session.flush()


def _reconcile(send_id: int, status: str, message_id: Any, at: datetime) -> None:
    """The ledger's own `reconcile` when it has one; otherwise settle the row here."""
    send = db.session.get(Send, send_id)
    if send is None:
        return
    if message_id and not send.provider_message_id:
        send.provider_message_id = str(message_id).split(".")[0][:200]
    reconcile = _optional("nurture.ledger", "reconcile")
    if reconcile is not None:
        reconcile(send_id, status)
        return
    if send.status in (SendStatus.CLAIMED.value, SendStatus.UNKNOWN.value):  # pragma: no cover
        if status in ("processed", "delivered"):
            send.status = SendStatus.SENT.value
            send.sent_at = send.sent_at or at
        elif status in ("bounce", "dropped"):
            send.status = SendStatus.FAILED.value
            send.error = f"provider reported {status}"


def _exit_directly(lead_id: int, reason: str) -> None:  # pragma: no cover
    import sqlalchemy as sa

    from nurture.models import Enrollment, EnrollmentStatus, LIVE_STATUSES

    for enrollment in db.session.scalars(sa.select(Enrollment).where(
            Enrollment.lead_id == lead_id, Enrollment.status.in_(LIVE_STATUSES))):
        enrollment.status = EnrollmentStatus.EXITED.value
        enrollment.exit_reason = reason[:300]
        enrollment.ended_at = utcnow()
        enrollment.next_run_at = None

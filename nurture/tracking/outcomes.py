"""What provider events do beyond the timeline: settle the send ledger (and the mail ledger of
the other emails), suppress addresses, take leads out of their sequences. Used by the webhook;
nothing here commits."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Lead
from app.mail import ledger as mail_ledger
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
        self._settle: list[tuple[int, str, Any, datetime]] = []
        self.reputation_changed = False

    def reconcile(self, send_id: int, status: str, message_id: Any, at: datetime) -> None:
        self._reconcile.append((send_id, status, message_id, at))

    def settle(self, delivery_id: int, event: str, message_id: Any, at: datetime) -> None:
        """An event about an email of the mail ledger (`app.mail.ledger.settle`)."""
        self._settle.append((delivery_id, event, message_id, at))

    def suppress(self, lead_id: int | None, email: str, reason: str, source: str) -> None:
        if reason == "spamreport":
            self.reputation_changed = True
        key = (lead_id, email)
        if key not in self._suppress:  # the first reason wins, as in the suppression list
            self._suppress[key] = (reason, source)

    def apply(self) -> None:
        # One query per 500 sends (and leads), held here: the session's identity map only keeps
        # objects someone references, so a `get` per event would read each row again.
        sends = _load(Send, {send_id for send_id, *_ in self._reconcile})
        reconcile = _optional("nurture.ledger", "reconcile")
        for send_id, status, message_id, at in self._reconcile:
            _reconcile(sends.get(send_id), status, message_id, at, reconcile)
        for delivery_id, event, message_id, at in self._settle:
            mail_ledger.settle(delivery_id, event, message_id and str(message_id), at)
        exit_all = _optional("nurture.unsubscribe", "exit_all")
        leads = _load(Lead, {lead_id for lead_id, _ in self._suppress if lead_id})
        for (lead_id, email), (reason, source) in self._suppress.items():
            lead = leads.get(lead_id) if lead_id else None
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


def _load(model: Any, ids: set[int]) -> dict[int, Any]:
    from nurture.tracking.store import chunks

    out: dict[int, Any] = {}
    for part in chunks(sorted(ids)):
        out.update((row.id, row) for row in db.session.scalars(
            sa.select(model).where(model.id.in_(part))))
    return out


def _reconcile(send: Send | None, status: str, message_id: Any, at: datetime,
               reconcile: Any) -> None:
    """The ledger's own `reconcile` when it has one; otherwise settle the row here."""
    if send is None:
        return
    if message_id and not send.provider_message_id:
        send.provider_message_id = str(message_id).split(".")[0][:200]
    if reconcile is not None:
        reconcile(send.id, status)  # its own `get` finds the row loaded above
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

    from nurture.models import LIVE_STATUSES, Enrollment, EnrollmentStatus

    for enrollment in db.session.scalars(sa.select(Enrollment).where(
            Enrollment.lead_id == lead_id, Enrollment.status.in_(LIVE_STATUSES))):
        enrollment.status = EnrollmentStatus.EXITED.value
        enrollment.exit_reason = reason[:300]
        enrollment.ended_at = utcnow()
        enrollment.next_run_at = None

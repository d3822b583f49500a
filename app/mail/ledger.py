"""The mail ledger: one row per email Kindling sends outside a nurture sequence, claimed and
committed before the provider is called (nurture steps keep their own ledger, `nurture.ledger`,
which works the same way).

Each email has a unique `key` saying what it is, `<purpose>:<ids>` (`asset:12`, `confirm:12`,
`alert:7`, ...): a second worker, or RQ delivering the same job twice, finds the row and stands
back. The row's id travels to SendGrid as the `delivery_id` custom arg, so the Event Webhook's
events for the email name it.

status: claimed → sent, or retry (the provider refused for now; the next attempt claims the
row again), failed (refused for good, or out of attempts), unknown (the request may have
reached the provider, but no answer came: it is never sent again automatically; `settle`
decides it from the provider's events). A `claimed` row whose worker died becomes `unknown`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload
from werkzeug.utils import import_string

from app.db import Model, UTCDateTime, db, rows_matched, utcnow

# SendGrid event names: the provider has the email, or refused it for good.
PROVIDER_ACCEPTED = frozenset({"processed", "delivered", "deferred", "open", "click", "sent"})
PROVIDER_REJECTED = frozenset({"bounce", "dropped", "blocked"})

CUSTOM_ARG = "delivery_id"  # the custom arg that carries the row's id to SendGrid and back


class DeliveryStatus(StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNKNOWN = "unknown"


ATTENTION = (DeliveryStatus.RETRY, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)


class MailDelivery(Model):
    __tablename__ = "mail_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(300), unique=True)  # <purpose>:<ids>
    purpose: Mapped[str] = mapped_column(sa.String(40))
    # The lead the email is about, when there is one (for the Mail page); never an address.
    lead_id: Mapped[int | None] = mapped_column(sa.ForeignKey("leads.id", ondelete="SET NULL"),
                                                index=True)
    subject: Mapped[str] = mapped_column(sa.String(300), default="")
    status: Mapped[str] = mapped_column(sa.String(10), default=DeliveryStatus.CLAIMED.value)
    attempts: Mapped[int] = mapped_column(default=0)
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(200))
    error: Mapped[str | None] = mapped_column(sa.Text)
    # A retry waits at least until then (the provider's Retry-After / X-RateLimit-Reset).
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    lead = relationship("Lead")

    __table_args__ = (sa.Index("ix_mail_deliveries_status_updated", "status", "updated_at"),)


def purpose_of(key: str) -> str:
    return key.partition(":")[0][:40]


def unique_key(purpose: str) -> str:
    """A key for an email that is one of a kind when asked for (a test send): made once, where
    the email is asked for, and handed to the job that sends it."""
    return f"{purpose}:{uuid.uuid4().hex}"


@dataclass
class Claim:
    outcome: str  # claimed | sent | failed | unknown | busy | wait
    row: MailDelivery | None

    @property
    def ours(self) -> bool:
        return self.outcome == "claimed"


def find(key: str) -> MailDelivery | None:
    return db.session.scalar(sa.select(MailDelivery).where(MailDelivery.key == key))


def claim(key: str, *, lead_id: int | None = None) -> Claim:
    """Take the right to send the email `key` names, committing the claim. Only 'claimed' may
    send; 'wait' means a retry that the provider asked to hold off (see `not_before`)."""
    now = utcnow()
    row = find(key)
    if row is None:
        row = MailDelivery(key=key, purpose=purpose_of(key), lead_id=lead_id,
                           status=DeliveryStatus.CLAIMED.value, attempts=1, claimed_at=now)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:  # another worker inserted it a moment ago
            row = find(key)
            if row is None:
                return Claim("busy", None)
        else:
            db.session.commit()
            return Claim("claimed", row)
    status = row.status
    if status in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN):
        return Claim(status, row)
    if status == DeliveryStatus.CLAIMED:
        timeout = timedelta(seconds=int(current_app.config["MAIL_CLAIM_TIMEOUT"]))
        if row.claimed_at and row.claimed_at > now - timeout:
            return Claim("busy", row)  # another worker is talking to the provider right now
        if move(row, DeliveryStatus.CLAIMED, status=DeliveryStatus.UNKNOWN.value,
                error="the worker stopped during the send; waiting for the provider's events"):
            return Claim("unknown", row)
        return Claim("busy", row)
    # RETRY: not before the provider said; then take the next attempt, unless another did.
    if row.not_before is not None and row.not_before > now:
        return Claim("wait", row)
    if move(row, DeliveryStatus.RETRY, status=DeliveryStatus.CLAIMED.value, claimed_at=now,
            attempts=MailDelivery.attempts + 1):
        return Claim("claimed", row)
    return Claim("busy", row)


def move(row: MailDelivery, expected: DeliveryStatus, **values) -> bool:
    """Compare-and-set on the status, committed: True when this process made the change."""
    matched = rows_matched(
        sa.update(MailDelivery).where(MailDelivery.id == row.id,
                                      MailDelivery.status == expected.value)
        .values(updated_at=utcnow(), **values).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(row)
    return matched == 1


def needing_attention(limit: int = 100) -> list[MailDelivery]:
    """Emails the Mail page lists: refused, waiting for a retry, or of unknown fate (including
    a claim whose worker stopped), newest first."""
    stale = utcnow() - timedelta(seconds=int(current_app.config["MAIL_CLAIM_TIMEOUT"]))
    return list(db.session.scalars(
        sa.select(MailDelivery)
        .where(sa.or_(MailDelivery.status.in_([s.value for s in ATTENTION]),
                      sa.and_(MailDelivery.status == DeliveryStatus.CLAIMED.value,
                              MailDelivery.claimed_at < stale)))
        .options(selectinload(MailDelivery.lead))
        .order_by(MailDelivery.updated_at.desc(), MailDelivery.id.desc()).limit(limit)))


# ---------------------------------------------------------------- settling from provider events

def add_settled_listener(app: Flask, purpose: str, listener: str) -> None:
    """Call the function at dotted path `listener` with the row when a provider event settles
    an email of `purpose` (claimed or unknown → sent or failed), in the webhook's transaction:
    e.g. to write the lead's event. Imported when first needed (the web process imports no
    job modules up front)."""
    app.extensions.setdefault("mail_settled", {}).setdefault(purpose, []).append(listener)


def settle(delivery_id: int, provider_event: str, message_id: str | None = None,
           at: datetime | None = None) -> str | None:
    """Settle a `claimed`/`unknown` email from what SendGrid reports about it (the webhook
    calls this with the event's name, matched by the `delivery_id` custom arg). Returns the new
    status, or None when the row needed nothing. The caller commits."""
    row = db.session.get(MailDelivery, delivery_id)
    if row is None or row.status not in (DeliveryStatus.CLAIMED, DeliveryStatus.UNKNOWN):
        return None
    name = (provider_event or "").lower()
    if name in PROVIDER_ACCEPTED:
        row.status, row.sent_at, row.error = DeliveryStatus.SENT.value, at or utcnow(), None
    elif name in PROVIDER_REJECTED:
        row.status, row.error = DeliveryStatus.FAILED.value, f"SendGrid reported {name}"
    else:
        return None
    if message_id and not row.provider_message_id:
        row.provider_message_id = str(message_id).split(".")[0][:200]
    db.session.flush()
    for listener in current_app.extensions.get("mail_settled", {}).get(row.purpose, []):
        import_string(listener)(row)
    return row.status


def seed_demo() -> list[str]:
    """Demo: two emails on the Mail page's 'need attention' list, as SendGrid trouble leaves
    them (the demo's real emails all land in the local outbox)."""
    from app.leads.models import Lead

    def lead_id(email: str) -> int | None:
        return db.session.scalar(sa.select(Lead.id).where(Lead.email == email))

    demo = [
        ("asset:demo", "lee@brightlabs.example.com", "Your download: the demo guide",
         DeliveryStatus.UNKNOWN, ("no answer from SendGrid (ReadTimeoutError: read timed "
                                  "out); the email may have been accepted (demo)")),
        ("confirm:demo", "sofia@gmail.com", "Please confirm your subscription",
         DeliveryStatus.FAILED, ("SendGrid refused the message (400): Does not contain a "
                                 "valid address (demo)")),
    ]
    for key, email, subject, status, error in demo:
        if find(key) is None:
            db.session.add(MailDelivery(key=key, purpose=purpose_of(key), lead_id=lead_id(email),
                                        subject=subject, status=status.value, attempts=1,
                                        error=error, claimed_at=utcnow()))
    db.session.commit()
    base = current_app.config["BASE_URL"]
    return [f"Mail (emails that need attention): {base}/admin/outbox/#attention"]

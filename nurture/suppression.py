"""The suppression list: addresses that must never get a nurture email again.

Unsubscribes add to it here; the SendGrid webhook (bounces, spam reports) calls `suppress` too.
Like the lead core's service functions, nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from nurture.models import Suppression, SuppressionReason


def is_suppressed(email: str) -> bool:
    found = db.session.scalar(sa.select(Suppression.id).where(Suppression.email == email.lower()))
    return found is not None


def suppress(email: str, reason: SuppressionReason | str, source: str) -> Suppression:
    """Add `email` (a lead's normalised address) to the list; the first reason is kept."""
    email = email.strip().lower()
    existing = db.session.scalar(sa.select(Suppression).where(Suppression.email == email))
    if existing is not None:
        return existing
    row = Suppression(email=email, reason=SuppressionReason(reason).value, source=source[:200])
    db.session.add(row)
    db.session.flush()
    return row


def why_not_emailable(lead: Lead) -> str | None:
    """None when nurture may email this lead now, else the reason (for exits and the ledger)."""
    if lead.unsubscribed_at is not None:
        return "unsubscribed"
    if lead.bounced_at is not None:
        return "bounced"
    found = db.session.scalar(sa.select(Suppression.reason).where(Suppression.email == lead.email))
    return blocked_reason(lead, found)


def blocked_reason(lead: Lead, suppression_reason: str | None) -> str | None:
    """`why_not_emailable` for a caller that read the lead and its suppression row (its
    reason, None when there is none) itself, in the same statement."""
    if lead.unsubscribed_at is not None:
        return "unsubscribed"
    if lead.bounced_at is not None:
        return "bounced"
    if suppression_reason is not None:
        return f"suppressed ({suppression_reason})"
    return None

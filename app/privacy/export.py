"""Access requests: everything Kindling holds about one person, as one JSON document.

The format is documented in docs/privacy-export.md (`FORMAT`, `VERSION`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import PROFILE_FIELDS, InvalidEmail, normalise_email
from app.privacy.holders import jsonable, rows_of, table_holders

FORMAT = "kindling.person-export"
VERSION = 1
PROFILE = ("email", "email_display", *PROFILE_FIELDS, "attributes", "stage", "fit_score",
           "engagement_score", "created_at", "updated_at", "unsubscribed_at", "bounced_at")


class NoSuchPerson(LookupError):
    """No lead has that address; the message says so."""


def find_lead(email: str) -> Lead:
    try:
        identity, _ = normalise_email(email)
    except InvalidEmail as exc:
        raise NoSuchPerson(f"“{email}” is not an email address ({exc}).") from None
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == identity))
    if lead is None:
        raise NoSuchPerson(f"No lead has the address {identity}.")
    return lead


def export(lead: Lead) -> dict[str, Any]:
    """The person's document: the profile, then one section per holder (empty ones included,
    so a reader sees what was looked at)."""
    profile = {name: jsonable(getattr(lead, name)) for name in PROFILE}
    sections = {holder.name: rows_of(holder, lead) for holder in table_holders()}
    return {"format": FORMAT, "version": VERSION, "exported_at": utcnow().isoformat(),
            "lead_id": lead.id, "profile": profile, "sections": sections}

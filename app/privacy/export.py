"""Access requests: everything Kindling holds about one person, as one JSON document.

The format is documented in docs/privacy-export.md (`FORMAT`, `VERSION`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import PROFILE_FIELDS, InvalidEmail, normalise_email
from app.privacy.holders import held_without_lead, jsonable, rows_of, table_holders

FORMAT = "kindling.person-export"
VERSION = 1
PROFILE = ("email", "email_display", *PROFILE_FIELDS, "attributes", "stage", "fit_score",
           "engagement_score", "created_at", "updated_at", "unsubscribed_at", "bounced_at")


class NoSuchPerson(LookupError):
    """No lead has that address; the message says so."""


def _identity(email: str) -> str:
    try:
        return normalise_email(email)[0]
    except InvalidEmail as exc:
        raise NoSuchPerson(f"“{email}” is not an email address ({exc}).") from None


def find_person(email: str) -> tuple[str, Lead | None]:
    """(normalised address, its lead): the lead, or None when no lead has the address but
    rows are held by it (a quarantined submit, a suppression). NoSuchPerson when nothing is."""
    identity = _identity(email)
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == identity))
    if lead is None and not held_without_lead(identity):
        raise NoSuchPerson(f"No lead has the address {identity}.")
    return identity, lead


def export(lead: Lead | None, identity: str = "") -> dict[str, Any]:
    """The person's document: the profile, then one section per holder (empty ones included,
    so a reader sees what was looked at). No lead (`find_person`): `lead_id` is null and the
    profile holds only the address."""
    if lead is None:
        profile: dict[str, Any] = {"email": identity}
    else:
        profile = {name: jsonable(getattr(lead, name)) for name in PROFILE}
    sections = {holder.name: rows_of(holder, lead, identity) for holder in table_holders()}
    return {"format": FORMAT, "version": VERSION, "exported_at": utcnow().isoformat(),
            "lead_id": lead.id if lead is not None else None, "profile": profile,
            "sections": sections}

"""Demo data: the default rules as version 1, every demo lead scored, and one MQL waiting
for sales, made through the real scoring path. Idempotent."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.leads.service import record_event
from nurture.scoring import rebuild, service

# The first of these still open to scoring gets the activity (another seeder may already have
# made the first one an MQL by hand).
DEMO_MQL_EMAILS = ("dana.director@acme-industrial.example.com", "lee@brightlabs.example.com")
DEMO_KEY = "demo-scoring"


def _demo_lead() -> Lead | None:
    leads = list(db.session.scalars(sa.select(Lead).where(Lead.email.in_(DEMO_MQL_EMAILS))))
    leads.sort(key=lambda lead: DEMO_MQL_EMAILS.index(lead.email))
    for lead in leads:  # the one a previous run chose
        first = f"{DEMO_KEY}-{lead.id}-form_submitted-6"  # the first key _give_demo_activity writes
        if db.session.scalar(sa.select(Event.id).where(
                Event.lead_id == lead.id, Event.dedupe_key == first).limit(1)):
            return lead
    return next((lead for lead in leads if lead.stage in service.ELIGIBLE_STAGES), None)


def _give_demo_activity(lead: Lead) -> None:
    """Interest a real buyer shows: pricing twice, a form, a click (dedupe keys: once only)."""
    now = utcnow()
    for days, kind, extra in (
        (6, "form_submitted", {"data": {"form": "Demo request", "form_id": "demo"}}),
        (5, "email_clicked", {"data": {"send_id": "demo", "url": "https://example.com/guide"}}),
        (4, "page_viewed", {"url": "/pricing"}),
        (2, "asset_downloaded", {"data": {"asset": "Pricing guide"}}),
        (1, "page_viewed", {"url": "/pricing"}),
    ):
        record_event(lead, kind, occurred_at=now - timedelta(days=days),
                     dedupe_key=f"{DEMO_KEY}-{lead.id}-{kind}-{days}", **extra)


def seed_demo() -> list[str]:
    version = service.ensure_default_version()
    db.session.commit()
    lead = _demo_lead()
    if lead is not None:
        _give_demo_activity(lead)
        db.session.commit()
        service.score_lead(lead.id)  # the incremental path, as a worker would run it
        db.session.commit()
    stats = rebuild.rebuild()
    lines = [f"Scoring: rules v{version.version}, {stats.leads} leads scored."]
    if lead is not None:
        db.session.refresh(lead)
        lines.append(f"  Scored into the sales queue: {lead.email_display} ({lead.stage_label})")
    return lines

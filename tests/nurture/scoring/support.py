"""Builders for scoring tests: a lead with a profile, activity at given ages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead, StageChange
from app.leads.service import record_event, upsert_lead

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

DIRECTOR = {"first_name": "Dana", "company": "Acme", "job_title": "Director of Ops",
            "country": "GB"}  # 15 + 10 + 5 = 30: fit A


def make_lead(email: str = "dana@acme.example.com", **values: Any) -> Lead:
    lead = upsert_lead(email, values, source="test").lead
    db.session.commit()
    return lead


def add_events(lead: Lead, *specs: tuple[str, float] | tuple[str, float, dict[str, Any]],
               now: datetime = NOW, commit: bool = True) -> None:
    """(type, days ago[, record_event keywords]) each."""
    for spec in specs:
        kind, days_ago, *rest = spec
        extra = rest[0] if rest else {}
        record_event(lead, kind, occurred_at=now - timedelta(days=days_ago), **extra)
    if commit:
        db.session.commit()


def hot_activity() -> list[tuple[str, float, dict[str, Any]] | tuple[str, float]]:
    """Raw 70 points in the last days: well over an engagement threshold of 50."""
    return [("page_viewed", 0.5, {"url": "https://acme.example/pricing"}),
            ("page_viewed", 1.5, {"url": "/pricing?plan=team"}),
            ("form_submitted", 2, {"data": {"form_id": 3}}),
            ("asset_downloaded", 2, {"campaign_id": 7})]


def stage_changes(lead: Lead) -> list[StageChange]:
    db.session.expire_all()
    return db.session.scalars(sa.select(StageChange).where(StageChange.lead_id == lead.id)
                              .order_by(StageChange.id)).all()


def reload(lead: Lead) -> Lead:
    db.session.expire_all()
    return db.session.get(Lead, lead.id)

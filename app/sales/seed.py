"""Demo data: an MQL waiting in sales@example.com's queue, made through the real handoff."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from app.auth.models import find_user_by_email
from app.db import db
from app.leads.models import Lead, Stage, StageChange
from app.leads.service import change_stage
from app.sales.handoff import on_mql
from app.sales.models import Assignment

DEMO_OWNER = "sales@example.com"
DEMO_LEAD = "dana.director@acme-industrial.example.com"


def seed_sales() -> list[str]:
    owner = find_user_by_email(DEMO_OWNER)
    if owner is None:
        return []
    lead = db.session.scalar(sa.select(Lead).where(Lead.stage == Stage.MQL.value)
                             .order_by(Lead.id).limit(1))
    if lead is None:
        lead = db.session.scalar(sa.select(Lead).where(Lead.email == DEMO_LEAD))
        if lead is None or lead.stage != Stage.LEAD.value:
            return []
        change_stage(lead, Stage.MQL, reason="Demo: ready for sales", actor="demo seed")
        db.session.flush()
    change = db.session.scalar(sa.select(StageChange).where(
        StageChange.lead_id == lead.id, StageChange.to_stage == Stage.MQL.value)
        .order_by(StageChange.id.desc()).limit(1))
    if change is not None and db.session.scalar(
            sa.select(Assignment.id).where(Assignment.stage_change_id == change.id)) is None:
        on_mql(change)  # the listener's outbox row finds this done when the worker runs it
    db.session.commit()
    base = current_app.config["BASE_URL"]
    return [f"Sales queue: {base}/sales/queue ({lead.display_name} waits as an MQL)"]

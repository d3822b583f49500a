"""Outbox and periodic jobs of the sales package (ids in; see app.jobs)."""

from __future__ import annotations

import sqlalchemy as sa

from app import outbox
from app.db import db
from app.leads.models import Stage, StageChange
from app.outbox import OutboxJob
from app.sales.models import SalesSettings


def on_stage_change(stage_change_id: int) -> None:
    """Stage listener: hand MQLs to sales; tell the CRM about every change. Idempotent."""
    change = db.session.get(StageChange, stage_change_id)
    if change is None:
        return
    if change.to_stage == Stage.MQL.value:
        from app.sales.handoff import on_mql

        on_mql(change)
    key = f"sales-crm:{change.id}"
    if SalesSettings.load().crm_webhook_url and db.session.scalar(
            sa.select(OutboxJob.id).where(OutboxJob.dedupe_key == key)) is None:
        outbox.add("app.sales.crm.deliver", change.id, dedupe_key=key)
    db.session.commit()

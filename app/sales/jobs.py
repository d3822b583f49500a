"""Outbox and periodic jobs of the sales package (ids in; see app.jobs)."""

from __future__ import annotations

from app.db import db
from app.leads.models import Stage, StageChange


def on_stage_change(stage_change_id: int) -> None:
    """Stage listener: hand MQLs to sales. Idempotent. (The CRM hears about every change
    through its webhook subscription: app.webhooks.)"""
    change = db.session.get(StageChange, stage_change_id)
    if change is None:
        return
    if change.to_stage == Stage.MQL.value:
        from app.sales.handoff import on_mql

        on_mql(change)
    db.session.commit()

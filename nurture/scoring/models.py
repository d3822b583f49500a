"""Scoring's tables: versioned rule sets and each lead's latest score."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, Model, UTCDateTime, utcnow

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class RuleSet(Model):
    """One version of the scoring rules. Never edited once saved: a change is a new version.
    Exactly one is active (a partial unique index enforces it)."""

    __tablename__ = "scoring_rule_sets"
    __table_args__ = (
        sa.Index("uq_scoring_rule_sets_active", "active", unique=True,
                 sqlite_where=sa.text("active"), postgresql_where=sa.text("active")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    active: Mapped[bool] = mapped_column(default=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    created_by = relationship("User")

    def __repr__(self) -> str:
        return f"<RuleSet v{self.version}{' active' if self.active else ''}>"


class LeadScore(Model):
    """The latest score of a lead, for querying and for the sweep. Recomputable from events."""

    __tablename__ = "lead_scores"

    lead_id: Mapped[int] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True)
    ruleset_version: Mapped[int] = mapped_column(default=0)
    fit_points: Mapped[int] = mapped_column(default=0)
    fit_grade: Mapped[str] = mapped_column(sa.String(1), default="F", index=True)
    engagement: Mapped[float] = mapped_column(sa.Float, default=0.0)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The newest human event the score has seen; the sweep rescores leads with newer ones.
    last_event_id: Mapped[int | None] = mapped_column(BigId)

    def __repr__(self) -> str:
        return f"<LeadScore lead={self.lead_id} {self.fit_grade} {self.engagement}>"


class MqlSnapshot(Model):
    """The score a lead had when it was handed to sales (its move to MQL), under the rules
    active then: what calibration compares with what sales decided and what closed."""

    __tablename__ = "scoring_mql_snapshots"

    stage_change_id: Mapped[int] = mapped_column(
        sa.ForeignKey("stage_changes.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    lead_id: Mapped[int] = mapped_column(index=True)
    ruleset_version: Mapped[int] = mapped_column(default=0)
    fit_points: Mapped[int] = mapped_column(default=0)
    fit_grade: Mapped[str] = mapped_column(sa.String(1), default="F")
    engagement: Mapped[float] = mapped_column(sa.Float, default=0.0)
    mql_at: Mapped[datetime] = mapped_column(UTCDateTime)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WhatIfRun(Model):
    """A what-if replay of proposed thresholds or a rule set over the last N days of events,
    run in the background; `result` holds its numbers once done."""

    __tablename__ = "scoring_whatif_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    days: Mapped[int] = mapped_column(default=90)
    label: Mapped[str] = mapped_column(sa.String(200), default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(10), default="queued")  # running | done | failed
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(sa.Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_by = relationship("User")

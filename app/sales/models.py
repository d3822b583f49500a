"""The handoff to sales: settings, reps and territories, assignments, alerts, CRM deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, Model, UTCDateTime, db, utcnow

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WORK_WEEK = [0, 1, 2, 3, 4]


class SalesSettings(Model):
    """One row (id 1) for the workspace; `load()` gives defaults before anyone saved it."""

    __tablename__ = "sales_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_mode: Mapped[str] = mapped_column(sa.String(20), default="round_robin")
    team_email: Mapped[str] = mapped_column(sa.String(320), default="")
    manager_email: Mapped[str] = mapped_column(sa.String(320), default="")
    sla_hours: Mapped[int] = mapped_column(default=8)  # working hours
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    work_start_hour: Mapped[int] = mapped_column(default=9)
    work_end_hour: Mapped[int] = mapped_column(default=17)
    allow_non_owner: Mapped[bool] = mapped_column(default=False)
    crm_webhook_url: Mapped[str] = mapped_column(sa.String(500), default="")
    # A Slack-compatible incoming-webhook URL: team alerts go there as well as by email.
    team_slack_url: Mapped[str] = mapped_column(sa.String(500), default="")
    crm_webhook_secret: Mapped[str] = mapped_column(sa.String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @classmethod
    def load(cls) -> SalesSettings:
        row = db.session.get(cls, 1)
        if row is None:
            row = cls(id=1, assignment_mode="round_robin", team_email="", manager_email="",
                      sla_hours=8, timezone="UTC", work_start_hour=9, work_end_hour=17,
                      allow_non_owner=False, crm_webhook_url="", crm_webhook_secret="",
                      team_slack_url="")
        return row


class SalesRep(Model):
    """A sales user's place in the rotation. Sales users without a row: weight 1, Mon–Fri."""

    __tablename__ = "sales_reps"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         unique=True)
    weight: Mapped[int] = mapped_column(default=1)  # 0 = out of the rotation
    working_days: Mapped[list[int]] = mapped_column(JSONType, default=lambda: list(WORK_WEEK))
    is_manager: Mapped[bool] = mapped_column(default=False)
    # The rep's own incoming-webhook URL (Slack or compatible): their alerts go there too.
    slack_url: Mapped[str] = mapped_column(sa.String(500), default="")

    user = relationship("User")

    @property
    def days_label(self) -> str:
        return ", ".join(WEEKDAYS[d] for d in sorted(self.working_days or [])) or "none"


class Territory(Model):
    __tablename__ = "sales_territories"

    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(sa.String(2), unique=True)  # ISO 3166-1 alpha-2
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))

    user = relationship("User")


class Assignment(Model):
    """One handoff: a lead entering MQL, who got it and why, and what sales decided."""

    __tablename__ = "sales_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"),
                                         index=True)
    stage_change_id: Mapped[int] = mapped_column(
        sa.ForeignKey("stage_changes.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"),
                                                   index=True)
    method: Mapped[str] = mapped_column(sa.String(20))  # round_robin | territory | kept | none
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The decision: accepted | recycled | disqualified, or left by another path (closed)
    outcome: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    decision_reason: Mapped[str] = mapped_column(sa.Text, default="")

    lead = relationship("Lead")
    user = relationship("User", foreign_keys=[user_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
    alerts = relationship("Alert", back_populates="assignment", order_by="Alert.id")


class Alert(Model):
    """An email to sales, persisted before it is sent; `key` makes it exist once. It is sent
    through the mail ledger (`app.mail.deliver`, key `alert:<id>`), whose row it follows.

    status: pending → sent, or retry (provider failed, tries left), undelivered (out of tries
    or refused), unknown (no answer came, or the worker died mid-send: never sent blindly
    again; SendGrid's events settle it).
    """

    __tablename__ = "sales_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(400), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(20))  # mql | reminder | escalation | digest
    assignment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sales_assignments.id", ondelete="CASCADE"), index=True)
    lead_id: Mapped[int | None] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"),
                                                   index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(sa.String(320))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(12), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(200))
    # The chat copy (app.sales.slack): claimed before the post, cleared when it failed.
    slack_posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slack_error: Mapped[str | None] = mapped_column(sa.Text)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    assignment = relationship("Assignment", back_populates="alerts")
    lead = relationship("Lead")

    @property
    def undelivered(self) -> bool:
        return self.status in ("undelivered", "unknown")


class WebhookDelivery(Model):
    """One attempt to tell the CRM about a stage change."""

    __tablename__ = "sales_webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    stage_change_id: Mapped[int] = mapped_column(
        sa.ForeignKey("stage_changes.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column()
    url: Mapped[str] = mapped_column(sa.String(500))
    status_code: Mapped[int | None] = mapped_column()
    ok: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (sa.UniqueConstraint("stage_change_id", "attempt"),)

"""Outcomes from sales and the CRM: each deal or close as a row, and the CRM webhook's
message ids (a replayed message is refused by its id)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Model, UTCDateTime, utcnow


class Outcome(Model):
    """One outcome: a lead reached opportunity, customer or lost, with the deal's amount.

    `stage_change_id` is the lifecycle move it made (None when the lead was already at that
    stage: a second deal of a customer). The lead link is dropped, not the row, when a lead is
    erased: the amounts stay in the totals."""

    __tablename__ = "lead_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    stage: Mapped[str] = mapped_column(sa.String(20))  # opportunity | customer | lost
    amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(14, 2))
    currency: Mapped[str] = mapped_column(sa.String(3), default="")
    external_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    actor: Mapped[str] = mapped_column(sa.String(40))  # user | crm | api
    actor_user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    stage_change_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("stage_changes.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    lead = relationship("Lead")
    actor_user = relationship("User")

    @property
    def actor_label(self) -> str:
        return self.actor_user.email if self.actor_user is not None else self.actor

    @property
    def amount_label(self) -> str:
        if self.amount is None:
            return "—"
        return f"{self.amount:,.2f} {self.currency}".strip()


class CrmWebhookMessage(Model):
    """A CRM webhook message that was accepted, by its `webhook-id`: the same id again is a
    replay. Written in the same commit as the outcome it recorded."""

    __tablename__ = "crm_webhook_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[str] = mapped_column(sa.String(200), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("lead_outcomes.id", ondelete="SET NULL"))

"""Outgoing webhooks: endpoints (subscriptions), messages, deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, Model, UTCDateTime, utcnow

EVENT_TYPES = ("lead.created", "lead.updated", "lead.stage_changed", "form.submitted",
               "email.sent", "email.clicked", "lead.unsubscribed")


class WebhookEndpoint(Model):
    """A subscriber: a URL, the event types it wants, and its signing secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(500))
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Standard Webhooks secret, `whsec_<base64>`. After a rotation the previous one still
    # signs (a second signature) until `previous_secret_until`, so receivers can switch.
    secret: Mapped[str] = mapped_column(sa.String(100))
    previous_secret: Mapped[str | None] = mapped_column(sa.String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def wants(self, event_type: str) -> bool:
        return self.active and event_type in (self.event_types or [])


class WebhookMessage(Model):
    """One event, signed and sent with the same `webhook-id` to every subscriber (and on
    every retry or replay), so receivers can de-duplicate."""

    __tablename__ = "webhook_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    msg_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(40))
    # What caused it (`stage_change:12`, `event:345:email.sent`): one message per cause.
    source_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EndpointDelivery(Model):
    """A message on its way to one endpoint: pending → delivered, or retrying (with the time
    of the next try) → failed after the last one."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.UniqueConstraint("endpoint_id", "message_id"),
                      sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(sa.String(12), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint = relationship("WebhookEndpoint")
    message = relationship("WebhookMessage")
    attempt_log = relationship("DeliveryAttempt", order_by="DeliveryAttempt.id",
                               back_populates="delivery")


class DeliveryAttempt(Model):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int] = mapped_column(default=0)

    delivery = relationship("EndpointDelivery", back_populates="attempt_log")


class WebhookMark(Model):
    """High-water marks of the event bridge (which `events` rows it has read)."""

    __tablename__ = "webhook_marks"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    previous: Mapped[int] = mapped_column(sa.BigInteger, default=0)

"""Queue a webhook: one message, one delivery per subscribed endpoint, in the caller's
transaction (so nothing is sent for work that rolled back); the first try runs after commit
through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from app import outbox
from app.db import db, utcnow
from app.webhooks.models import EVENT_TYPES, EndpointDelivery, WebhookEndpoint, WebhookMessage


def subscribers(event_type: str) -> list[WebhookEndpoint]:
    endpoints = db.session.scalars(sa.select(WebhookEndpoint)
                                   .where(WebhookEndpoint.active.is_(True))).all()
    return [e for e in endpoints if e.wants(event_type)]


def emit(event_type: str, data: dict[str, Any] | Callable[[], dict[str, Any]], *,
         source_key: str | None = None) -> WebhookMessage | None:
    """Record `event_type` for every endpoint that wants it. `data` (or what it returns, built
    only when someone subscribes) is the payload's `data`. A `source_key` seen before: nothing
    (the cause was already told). Does not commit."""
    assert event_type in EVENT_TYPES, event_type
    endpoints = subscribers(event_type)
    if not endpoints:
        return None
    if source_key is not None and db.session.scalar(
            sa.select(WebhookMessage.id).where(WebhookMessage.source_key == source_key)):
        return None
    now = utcnow()
    msg_id = "msg_" + uuid.uuid4().hex
    body = data() if callable(data) else data
    message = WebhookMessage(msg_id=msg_id, event_type=event_type, source_key=source_key,
                             created_at=now, payload={
                                 "type": event_type, "timestamp": now.isoformat(),
                                 "data": body})
    db.session.add(message)
    db.session.flush()
    for endpoint in endpoints:
        delivery = EndpointDelivery(endpoint_id=endpoint.id, message_id=message.id,
                                    status="pending", attempts=0, next_attempt_at=now,
                                    created_at=now)
        db.session.add(delivery)
        db.session.flush()
        outbox.add("app.webhooks.delivery.deliver", delivery.id, queue_name="default")
    return message

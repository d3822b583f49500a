"""Delivering webhooks: one try per job, exponential back-off for about 24 hours.

`deliver(delivery_id)` claims the delivery (compare-and-set: of two jobs only one sends),
POSTs the signed message through `app.netguard.post` (the target's address is checked again at
connect time, no redirects followed), logs the attempt, and either marks it delivered or sets
the next try from `WEBHOOK_RETRY_SCHEDULE`; after the last, failed. A try that ran out of time
lets the endpoint rest (`ENDPOINT_REST`): meanwhile its other deliveries wait untried, so a
receiver that never answers costs one timeout, not one per delivery. `sweep` (periodic) enqueues
the deliveries whose next try is due. Jobs never raise for a refusal: the row holds the state.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from app import netguard, outbox, queue
from app.db import db, rows_matched, utcnow
from app.jobs import job
from app.webhooks import signing
from app.webhooks.models import DeliveryAttempt, EndpointDelivery

log = logging.getLogger(__name__)

# A claim older than this belongs to a worker that died mid-request: the delivery may go again.
CLAIM_LEASE = timedelta(minutes=2)
# After a try to an endpoint ran out of time, its other deliveries wait this long untried: a
# receiver that never answers holds the worker for one timeout, not one per delivery.
ENDPOINT_REST = timedelta(minutes=1)


def schedule() -> list[int]:
    """Seconds before each retry; its length + 1 is the number of tries."""
    return [int(s) for s in current_app.config["WEBHOOK_RETRY_SCHEDULE"]]


def body_of(delivery: EndpointDelivery) -> str:
    return json.dumps(delivery.message.payload, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False)


def deliver(delivery_id: int) -> str:
    """One try of one delivery (an outbox job for the first; `deliver_job` for the rest)."""
    now = utcnow()
    claimed = rows_matched(
        sa.update(EndpointDelivery)
        .where(EndpointDelivery.id == delivery_id,
               EndpointDelivery.status.in_(("pending", "retrying")),
               sa.or_(EndpointDelivery.next_attempt_at.is_(None),
                      EndpointDelivery.next_attempt_at <= now),
               sa.or_(EndpointDelivery.claimed_at.is_(None),
                      EndpointDelivery.claimed_at < now - CLAIM_LEASE))
        .values(claimed_at=now, attempts=EndpointDelivery.attempts + 1)
        .execution_options(synchronize_session=False))
    db.session.commit()
    if not claimed:
        return "skipped"
    delivery = db.session.get_one(EndpointDelivery, delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.active:
        delivery.status, delivery.claimed_at = "failed", None
        delivery.last_error = "The endpoint is disabled."
        db.session.commit()
        return "failed"
    resting = _rest_until(endpoint.id)
    if resting is not None:
        delivery.status, delivery.next_attempt_at = "retrying", resting
        delivery.attempts, delivery.claimed_at = delivery.attempts - 1, None  # not a try
        delivery.last_error = "Waiting: the endpoint gave no answer in time a moment ago."
        db.session.commit()
        return "retrying"
    secrets_in_use = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and \
            endpoint.previous_secret_until > now:
        secrets_in_use.append(endpoint.previous_secret)
    body = body_of(delivery)
    headers = {"Content-Type": "application/json", "User-Agent": "Kindling-Webhooks/1",
               **signing.headers(delivery.message.msg_id, body, secrets_in_use)}
    status, error = None, None
    started = time.monotonic()
    try:
        reply = netguard.post(endpoint.url, body.encode("utf-8"), headers,
                              timeout=float(current_app.config["WEBHOOK_TIMEOUT"]))
        status = reply.status
        if not reply.ok:
            error = f"HTTP {status}"
    except netguard.BlockedURL as exc:
        error = f"Refused: {exc}"
    except netguard.OutboundError as exc:
        error = f"Unreachable: {exc}"[:500]
        if exc.timed_out:
            _rest(endpoint.id)
    elapsed = int((time.monotonic() - started) * 1000)
    tried = db.session.scalar(sa.select(sa.func.count()).select_from(DeliveryAttempt)
                              .where(DeliveryAttempt.delivery_id == delivery.id)) or 0
    db.session.add(DeliveryAttempt(delivery_id=delivery.id, attempt=tried + 1,
                                   at=now, status_code=status, error=error,
                                   duration_ms=elapsed))
    delivery.last_status, delivery.last_error, delivery.claimed_at = status, error, None
    if error is None:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = \
            "delivered", utcnow(), None
    else:
        waits = schedule()
        if delivery.attempts <= len(waits):
            delivery.status = "retrying"
            delivery.next_attempt_at = utcnow() + timedelta(seconds=waits[delivery.attempts - 1])
        else:
            delivery.status, delivery.next_attempt_at = "failed", None
            log.warning("webhook delivery %s to endpoint %s failed after %d tries: %s",
                        delivery.id, endpoint.id, delivery.attempts, error)
    db.session.commit()
    return delivery.status


def _rest_key(endpoint_id: int) -> str:
    return f"webhooks:endpoint-rest:{endpoint_id}"


def _rest(endpoint_id: int) -> None:
    """Let the endpoint rest: its deliveries wait ENDPOINT_REST untried (see `deliver`)."""
    until = utcnow() + ENDPOINT_REST
    queue.connection().set(_rest_key(endpoint_id), until.isoformat(),
                           ex=int(ENDPOINT_REST.total_seconds()))


def _rest_until(endpoint_id: int) -> datetime | None:
    value = queue.connection().get(_rest_key(endpoint_id))
    if not value:
        return None
    return datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)


@job
def deliver_job(delivery_id: int) -> str:
    return deliver(delivery_id)


@job
def sweep(limit: int = 500) -> int:
    """Periodic: enqueue the deliveries whose next try is due (and first tries the outbox has
    not run after a minute)."""
    now = utcnow()
    due = db.session.scalars(
        sa.select(EndpointDelivery.id)
        .where(sa.or_(
            sa.and_(EndpointDelivery.status == "retrying",
                    EndpointDelivery.next_attempt_at <= now),
            sa.and_(EndpointDelivery.status == "pending",
                    EndpointDelivery.next_attempt_at <= now - timedelta(minutes=1))))
        .order_by(EndpointDelivery.next_attempt_at).limit(limit)).all()
    for delivery_id in due:
        queue.enqueue("app.webhooks.delivery.deliver_job", delivery_id,
                      job_id=f"webhook-delivery-{delivery_id}")
    return len(due)


def in_flight(delivery: EndpointDelivery) -> bool:
    """A worker holds its claim: a try is being sent right now."""
    return delivery.claimed_at is not None and delivery.claimed_at >= utcnow() - CLAIM_LEASE


def replay(delivery: EndpointDelivery) -> bool:
    """Send this delivery again now (same `webhook-id`), whatever happened before, with a fresh
    round of retries; False (nothing changed) while a try is in flight, whose claim it would
    clear, letting a second worker send it at the same time. Does not commit; the outbox runs
    it after the commit."""
    if in_flight(delivery):
        return False
    delivery.status, delivery.next_attempt_at, delivery.claimed_at = "pending", utcnow(), None
    delivery.attempts = 0
    outbox.add("app.webhooks.delivery.deliver", delivery.id)
    return True

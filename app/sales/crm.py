"""The CRM webhook: every stage change POSTed as JSON, signed with HMAC-SHA256 over the raw
body (`X-Kindling-Signature: sha256=<hex>`), retried with back-off by the outbox's RQ retry,
each attempt logged as a WebhookDelivery. The receiver should de-duplicate on `id`.
Sent through `app.netguard.post`: never to a non-public address (checked again after DNS when
connecting), no redirect followed, and only the status is logged, never the response body."""

from __future__ import annotations

import hashlib
import hmac
import json

import sqlalchemy as sa
from flask import current_app

from app import netguard
from app.db import db, utcnow
from app.leads.models import StageChange
from app.sales.models import SalesSettings, WebhookDelivery


class DeliveryFailed(Exception):
    """The CRM did not answer 2xx; raised so the job is retried."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def document(change: StageChange) -> dict:
    lead = change.lead
    return {
        "id": f"stage_change:{change.id}",
        "type": "lead.stage_changed",
        "lead": {"id": lead.id, "email": lead.email_display, "fit_score": lead.fit_score,
                 "engagement_score": lead.engagement_score,
                 "owner": lead.owner.email if lead.owner else None},
        "stage": {"from": change.from_stage, "to": change.to_stage},
        "reason": change.reason,
        "actor": change.actor_label,
        "timestamp": change.changed_at.isoformat(),
    }


def deliver(stage_change_id: int) -> str:
    """Outbox job: POST this change to the CRM unless a delivery already succeeded."""
    settings = SalesSettings.load()
    change = db.session.get(StageChange, stage_change_id)
    if change is None or not settings.crm_webhook_url:
        return "skipped"
    attempts = db.session.scalars(sa.select(WebhookDelivery)
                                  .where(WebhookDelivery.stage_change_id == change.id)).all()
    if any(d.ok for d in attempts):
        return "done"
    attempt = len(attempts) + 1
    if attempt > int(current_app.config["SALES_WEBHOOK_MAX_ATTEMPTS"]):
        return "gave up"
    body = json.dumps(document(change), separators=(",", ":"), sort_keys=True).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "Kindling-Webhook/1",
               "X-Kindling-Delivery": f"stage_change:{change.id}",
               "X-Kindling-Signature": sign(settings.crm_webhook_secret or "", body)}
    status, error = None, None
    try:
        status = netguard.post(settings.crm_webhook_url, body, headers, timeout=float(
            current_app.config["SALES_WEBHOOK_TIMEOUT"])).status
    except (netguard.BlockedURL, netguard.OutboundError) as exc:
        error = str(exc)[:500]
    if status is not None and not 200 <= status < 300:
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    ok = status is not None and 200 <= status < 300
    db.session.add(WebhookDelivery(stage_change_id=change.id, attempt=attempt,
                                   url=settings.crm_webhook_url[:500], status_code=status,
                                   ok=ok, error=error, created_at=utcnow()))
    db.session.commit()
    if not ok and attempt < int(current_app.config["SALES_WEBHOOK_MAX_ATTEMPTS"]):
        raise DeliveryFailed(error or f"HTTP {status}")
    return "delivered" if ok else "failed"

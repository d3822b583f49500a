"""The inbound CRM webhook: `POST /webhooks/crm`, outcomes told by the CRM.

Signed as Standard Webhooks says: headers `webhook-id`, `webhook-timestamp` and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several may be given
space-separated), with the secret `CRM_WEBHOOK_SECRET` in its `whsec_<base64>` form. The
`standardwebhooks` library checks the signature (constant-time) and the timestamp (within 5
minutes either way). What it leaves to us: the replay check — an accepted `webhook-id` is kept
in `crm_webhook_messages`, in the commit of the outcome itself, so the same message again is
refused (409), also after Redis or a process restarts — and its exceptions for malformed input
(a signature without a comma, bad base64, a body that is not UTF-8), which are refusals too.

Body (JSON): `{"email" | "lead_id", "stage": "opportunity" | "customer" | "lost", "amount",
"currency", "external_id", "reason"?}`. Every refusal answers RFC 9457 problem details, changes
nothing and is logged with its reason.
"""

from __future__ import annotations

import binascii
import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug.exceptions import RequestEntityTooLarge

from app.db import db
from app.leads.models import Lead
from app.leads.service import InvalidEmail, normalise_email
from app.outcomes.models import CrmWebhookMessage
from app.outcomes.service import OutcomeError, record_outcome
from app.problems import problem

log = logging.getLogger(__name__)

bp = Blueprint("crm_webhook", __name__)

TOLERANCE_SECONDS = 300  # the library's window; checked here too, for a clear refusal
ACTOR = "crm"


class Refused(Exception):
    def __init__(self, status: int, slug: str, title: str, detail: str = ""):
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail


def _verifier() -> Webhook:
    secret = current_app.config.get("CRM_WEBHOOK_SECRET") or ""
    if not secret:
        raise Refused(503, "crm-webhook-not-configured", "CRM webhook not configured",
                      "Set CRM_WEBHOOK_SECRET (whsec_…) to receive outcomes from the CRM.")
    cached = current_app.extensions.get("crm_webhook_verifier")
    if cached is None or cached[0] != secret:
        try:
            cached = (secret, Webhook(secret))
        except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
            log.error("CRM_WEBHOOK_SECRET cannot be read as whsec_<base64>: %s", exc)
            raise Refused(503, "crm-webhook-not-configured", "CRM webhook not configured",
                          "CRM_WEBHOOK_SECRET is not a whsec_<base64> secret.") from None
        current_app.extensions["crm_webhook_verifier"] = cached
    return cached[1]


def verify(raw: bytes, headers: Any) -> str:
    """The message id of an authentic, fresh request; Refused otherwise."""
    message_id = headers.get("webhook-id") or ""
    timestamp = headers.get("webhook-timestamp") or ""
    signature = headers.get("webhook-signature") or ""
    if not (message_id and timestamp and signature):
        raise Refused(401, "signature-missing", "Signature headers missing",
                      "Send webhook-id, webhook-timestamp and webhook-signature.")
    if len(message_id) > 200:
        raise Refused(400, "bad-webhook-id", "webhook-id too long", "At most 200 characters.")
    verifier = _verifier()
    try:
        sent = float(timestamp)
    except ValueError:
        raise Refused(401, "bad-timestamp", "Bad timestamp",
                      "webhook-timestamp must be seconds since the epoch.") from None
    if abs(time.time() - sent) > TOLERANCE_SECONDS:
        raise Refused(401, "stale-timestamp", "Timestamp outside the accepted window",
                      "The message is older (or newer) than 5 minutes; it may be a replay.")
    try:
        verifier.verify(raw, {"webhook-id": message_id, "webhook-timestamp": timestamp,
                              "webhook-signature": signature}, json_parse=False)
    except WebhookVerificationError as exc:
        if "timestamp" in str(exc).lower():
            raise Refused(401, "stale-timestamp", "Timestamp outside the accepted window",
                          str(exc)) from None
        raise Refused(401, "bad-signature", "Signature does not match",
                      "No v1 signature matches the body with our secret.") from None
    except (ValueError, binascii.Error):  # malformed signature, bad base64, body not UTF-8
        raise Refused(401, "bad-signature", "Signature does not match",
                      "The webhook-signature header is malformed.") from None
    return message_id


def _lead(body: dict[str, Any]) -> Lead:
    lead_id, email = body.get("lead_id"), body.get("email")
    if lead_id is None and not email:
        raise Refused(422, "lead-missing", "No lead given", "Send \"email\" or \"lead_id\".")
    lead = None
    if lead_id is not None:
        if isinstance(lead_id, bool) or not isinstance(lead_id, int):
            raise Refused(422, "bad-lead-id", "Bad lead_id", "lead_id must be an integer.")
        lead = db.session.get(Lead, lead_id)
    if email:
        if not isinstance(email, str):
            raise Refused(422, "bad-email", "Bad email", "email must be text.")
        try:
            identity, _ = normalise_email(email)
        except InvalidEmail:
            raise Refused(422, "bad-email", "Bad email",
                          "email is not a valid address.") from None
        by_email = db.session.scalar(sa.select(Lead).where(Lead.email == identity))
        if lead is not None and by_email is not None and by_email.id != lead.id:
            raise Refused(422, "lead-mismatch", "email and lead_id disagree",
                          "They name two different leads.")
        lead = lead or by_email
    if lead is None:
        raise Refused(404, "unknown-lead", "Unknown lead",
                      "No lead has this email or id; nothing was recorded.")
    return lead


def _receive() -> tuple[dict[str, Any], int]:
    raw = request.get_data(cache=False)
    message_id = verify(raw, request.headers)
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused(400, "bad-json", "Body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(422, "bad-body", "Expected a JSON object")
    if db.session.scalar(sa.select(CrmWebhookMessage.id)
                         .where(CrmWebhookMessage.webhook_id == message_id)) is not None:
        raise Refused(409, "replay", "Message already received",
                      f"webhook-id {message_id} was accepted before; it is not applied twice.")
    lead = _lead(body)
    reason = body.get("reason")
    try:
        outcome = record_outcome(lead, str(body.get("stage") or ""), body.get("amount"),
                                 body.get("currency"), body.get("external_id"), actor=ACTOR,
                                 reason=reason if isinstance(reason, str) else "")
    except OutcomeError as exc:
        slug = "unknown-stage" if exc.field == "stage" and "not an outcome" in exc.message \
            else f"bad-{(exc.field or 'body').replace('_', '-')}"
        raise Refused(422, slug, "Outcome refused", exc.message) from None
    db.session.add(CrmWebhookMessage(webhook_id=message_id, outcome_id=outcome.id))
    try:
        db.session.commit()
    except IntegrityError:  # the same message, accepted by another request just now
        db.session.rollback()
        raise Refused(409, "replay", "Message already received",
                      f"webhook-id {message_id} was accepted before; it is not applied twice."
                      ) from None
    return {"lead_id": lead.id, "stage": lead.stage, "outcome_id": outcome.id}, 200


@bp.route("/webhooks/crm", methods=["POST"])
def receive():
    request.max_content_length = int(current_app.config["CRM_WEBHOOK_MAX_BYTES"])
    try:
        body, status = _receive()
    except RequestEntityTooLarge:
        exc = Refused(413, "too-large", "Body too large",
                      f"At most {current_app.config['CRM_WEBHOOK_MAX_BYTES']} bytes.")
        log.warning("crm webhook refused (413): body too large")
        return problem(exc.status, exc.slug, exc.title, exc.detail)
    except Refused as exc:
        db.session.rollback()
        log.warning("crm webhook refused (%s %s): %s [webhook-id %r]", exc.status, exc.slug,
                    exc.detail or exc.title, (request.headers.get("webhook-id") or "")[:200])
        return problem(exc.status, exc.slug, exc.title, exc.detail)
    return jsonify(body), status

"""SendGrid's signed Event Webhook: `POST /webhooks/sendgrid`.

Nothing is read, let alone recorded, before the ECDSA signature over timestamp + raw body
checks out with `SENDGRID_WEBHOOK_PUBLIC_KEY` (the library's `EventWebhook`) and the timestamp is
within `SENDGRID_WEBHOOK_MAX_AGE`. Missing headers → 401; a bad signature, a stale timestamp or
no key configured → 403.

A batch (SendGrid posts up to thousands of events) is handled with a few queries and one bulk
insert (one statement on PostgreSQL, `store.insert_events`); the ledger's sends and the
suppressed leads are loaded in bulk too (`outcomes`). SendGrid retries for 24 h, so every event is deduplicated: `sg:<sg_event_id>`, or a
hash of its identifying fields when that id is missing. Events map to nurture sends through the
`send_id` custom arg (a top-level key of each event), and to the other emails' mail ledger rows
(`app.mail.ledger`) through `delivery_id`: either ledger's unsettled rows are settled by them.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from app import queue
from app.db import db
from app.leads.models import Lead
from app.mail import ledger as mail_ledger
from nurture.tracking import classify, health, outcomes, store

log = logging.getLogger(__name__)

bp = Blueprint("tracking_webhook", __name__)

FUTURE_SKEW_SECONDS = 300
EVENT_TYPES = {"delivered": "email_delivered", "open": "email_opened", "click": "email_clicked",
               "spamreport": health.SPAM_TYPE, "unsubscribe": "unsubscribed",
               "group_unsubscribe": "unsubscribed", "dropped": "email_dropped"}


def _verifier() -> EventWebhook | None:
    key = current_app.config.get("SENDGRID_WEBHOOK_PUBLIC_KEY")
    if not key:
        return None
    cached = current_app.extensions.get("tracking_webhook_key")
    if cached is None or cached[0] != key:
        try:
            cached = (key, EventWebhook(key))
        except (ValueError, TypeError) as exc:
            log.error("SENDGRID_WEBHOOK_PUBLIC_KEY cannot be read: %s", exc)
            return None
        current_app.extensions["tracking_webhook_key"] = cached
    return cached[1]


def refusal(raw: bytes, signature: str | None, timestamp: str | None) -> tuple[int, str] | None:
    """None when the request is SendGrid's, else (status, why)."""
    if not signature or not timestamp:
        return 401, "signature headers missing"
    verifier = _verifier()
    if verifier is None:
        return 403, "no webhook verification key configured"
    try:
        sent = int(timestamp)
    except ValueError:
        return 403, "bad timestamp"
    now = time.time()
    if now - sent > int(current_app.config["SENDGRID_WEBHOOK_MAX_AGE"]) or \
            sent - now > FUTURE_SKEW_SECONDS:
        return 403, "timestamp outside the accepted window"
    try:
        ok = verifier.verify_signature(raw.decode("utf-8"), signature, timestamp)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        ok = False  # a malformed signature raises instead of returning False
    return None if ok else (403, "bad signature")


@bp.route("/webhooks/sendgrid", methods=["POST"])
def receive():
    request.max_content_length = int(current_app.config["SENDGRID_WEBHOOK_MAX_BYTES"])
    raw = request.get_data(cache=False)
    refused = refusal(raw, request.headers.get(EventWebhookHeader.SIGNATURE),
                      request.headers.get(EventWebhookHeader.TIMESTAMP))
    if refused is not None:
        log.warning("sendgrid webhook refused: %s", refused[1])
        return Response(refused[1], status=refused[0], mimetype="text/plain")
    try:
        events = json.loads(raw)
    except ValueError:
        return Response("body is not JSON", status=400, mimetype="text/plain")
    if not isinstance(events, list):
        return Response("expected a JSON array of events", status=400, mimetype="text/plain")
    return jsonify(process(events))


def dedupe_key(event: dict[str, Any]) -> str:
    sg_id = event.get("sg_event_id")
    if isinstance(sg_id, str) and sg_id:
        return f"sg:{sg_id}"[:200]
    fields = [event.get(name) for name in ("event", "sg_message_id", "email", "timestamp",
                                           "url", "send_id", "type", "reason")]
    digest = hashlib.sha256(json.dumps(fields, default=str).encode()).hexdigest()
    return f"sgc:{digest}"


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def process(events: list[Any]) -> dict[str, int]:
    """Record a verified batch. Returns counts for the response body and the logs."""
    fresh: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            continue
        key = dedupe_key(event)
        if key not in seen:
            seen.add(key)
            fresh.append((key, event))
    stored = store.existing_keys(seen)
    fresh = [(key, event) for key, event in fresh if key not in stored]

    sends = store.send_facts(i for i in (_int(e.get("send_id")) for _, e in fresh) if i)
    emails = {str(e.get("email") or "").strip().lower() for _, e in fresh}
    by_email = _leads_by_email(emails - {""})
    untracked = store.untracked_leads({s.lead_id for s in sends.values()} |
                                      set(by_email.values()))
    seconds = float(current_app.config["TRACKING_MACHINE_SECONDS"])

    rows: list[dict[str, Any]] = []
    verdicts: dict[tuple[Any, ...], classify.Verdict] = {}
    effects = outcomes.Outcomes()
    for key, event in sorted(fresh, key=lambda item: _int(item[1].get("timestamp")) or 0):
        name = event["event"]
        at = store.from_timestamp(event.get("timestamp"))
        send = sends.get(_int(event.get("send_id")) or 0)
        email = str(event.get("email") or "").strip().lower()
        lead_id = send.lead_id if send else by_email.get(email)
        # The provider's message id goes to the ledgers (reconcile, settle), not to each
        # event; the send and its step go to the event's columns (`send=`).
        data: dict[str, Any] = {}
        if send is not None and name in ("processed", "delivered", "bounce", "dropped"):
            effects.reconcile(send.id, name, event.get("sg_message_id"), at)
        delivery_id = _int(event.get(mail_ledger.CUSTOM_ARG))
        if delivery_id is not None:  # an email of the mail ledger (asset link, alert, ...)
            effects.settle(delivery_id, name, event.get("sg_message_id"), at)
        if name in ("open", "click"):
            if lead_id is None or lead_id in untracked:
                continue
            kind = "open" if name == "open" else "click"
            verdict = _by_request(verdicts, kind, str(event.get("useragent") or ""),
                                  event.get("ip"), bool(event.get("sg_machine_open")))
            if not verdict.is_bot and send is not None:
                verdict = classify.too_soon(at, send.reference, seconds) or verdict
            url = str(event["url"])[:2000] if kind == "click" and event.get("url") else None
            rows.append(store.event_row(EVENT_TYPES[name], lead_id=lead_id, at=at,
                                        verdict=verdict, send=send, url=url, dedupe_key=key))
            if kind == "click" and not verdict.is_bot and send is not None \
                    and not send.human_open:
                send.human_open = True
                rows.append(store.event_row(
                    "email_opened", lead_id=lead_id, at=at,
                    verdict=classify.Verdict(False, classify.IMPLIED_BY_CLICK),
                    send=send, dedupe_key=f"implied-open:{send.id}"))
            elif kind == "open" and not verdict.is_bot and send is not None:
                send.human_open = True
            continue
        if name == "delivered":
            rows.append(store.event_row("email_delivered", lead_id=lead_id, at=at, send=send, data=data,
                                        dedupe_key=key))
        elif name == "bounce":
            hard = (event.get("type") or "bounce") == "bounce"
            data.update(bounce_type="hard" if hard else str(event.get("type")),
                        reason=str(event.get("reason") or "")[:500])
            rows.append(store.event_row("bounced" if hard else "email_blocked", lead_id=lead_id,
                                        at=at, send=send, data=data, dedupe_key=key))
            if hard:
                effects.suppress(lead_id, email, "bounce", "SendGrid: hard bounce")
        elif name == "dropped":
            reason = str(event.get("reason") or "")
            data["reason"] = reason[:500]
            rows.append(store.event_row("email_dropped", lead_id=lead_id, at=at, send=send, data=data,
                                        dedupe_key=key))
            effects.suppress(lead_id, email, outcomes.dropped_reason(reason),
                             f"SendGrid: dropped ({reason[:100]})")
        elif name == "spamreport":
            rows.append(store.event_row(health.SPAM_TYPE, lead_id=lead_id, at=at, send=send, data=data,
                                        dedupe_key=key))
            effects.suppress(lead_id, email, "spamreport", "SendGrid: spam report")
        elif name in ("unsubscribe", "group_unsubscribe"):
            if event.get("asm_group_id") is not None:
                data["asm_group_id"] = str(event["asm_group_id"])
            rows.append(store.event_row("unsubscribed", lead_id=lead_id, at=at, send=send,
                                        data={**data, "source": f"sendgrid {name}"},
                                        dedupe_key=key))
            effects.suppress(lead_id, email, "unsubscribe", f"SendGrid: {name}")
    store.insert_events(rows)
    effects.apply()
    db.session.commit()
    _score_later(store.human_lead_ids(rows))
    if effects.reputation_changed or any(r["type"] == "email_delivered" for r in rows):
        health.check()
    counts = {"received": len(events), "recorded": len(rows),
              "duplicates": len(events) - len(fresh)}
    log.info("sendgrid webhook batch: %(received)d events, %(recorded)d recorded, "
             "%(duplicates)d duplicates", counts)
    return counts


def _by_request(verdicts: dict[tuple[Any, ...], classify.Verdict], kind: str, user_agent: str,
                ip: Any, machine: bool) -> classify.Verdict:
    """`classify.by_request`, once per distinct (user agent, address) of the batch."""
    key = (kind, user_agent, ip, machine)
    try:
        return verdicts[key]
    except KeyError:
        verdict = verdicts[key] = classify.by_request(kind, user_agent=user_agent, ip=ip,
                                                      sg_machine_open=machine)
        return verdict
    except TypeError:  # an address that is not a string: nothing to remember it by
        return classify.by_request(kind, user_agent=user_agent, ip=ip, sg_machine_open=machine)


def _score_later(lead_ids: set[int]) -> None:
    """One job hands the batch's leads to scoring, so the response does not wait on a Redis
    round trip per lead. Redis trouble is logged: scoring's periodic sweep catches up."""
    if not lead_ids or "scoring" not in current_app.extensions:
        return
    try:
        queue.enqueue("nurture.tracking.jobs.score_leads", sorted(lead_ids), queue="tracking")
    except RedisError as exc:
        log.warning("sendgrid webhook: scoring not asked for %d leads (%s)", len(lead_ids), exc)


def _leads_by_email(emails: set[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in store.chunks(sorted(emails)):
        out.update(db.session.execute(sa.select(Lead.email, Lead.id)
                                      .where(Lead.email.in_(part))).all())
    return out

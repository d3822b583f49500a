"""Builders for tracking tests: a lead with a sent email, hits over HTTP, the writer's run."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.leads.service import upsert_lead
from nurture.models import Enrollment, Send, SendStatus, Sequence, Step
from nurture.tracking import links, writer

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Safari/605.1.15")
HOME_IP = "203.0.113.7"


def make_lead(email: str = "ann@example.com", **values: Any) -> Lead:
    lead = upsert_lead(email, {"first_name": "Ann", **values}, source="test").lead
    db.session.commit()
    return lead


def make_send(lead: Lead | None = None, *, sent_ago: timedelta = timedelta(hours=1),
              status: str = SendStatus.SENT.value, sequence_status: str = "active") -> Send:
    lead = lead or make_lead()
    sequence = Sequence(name="Welcome", status=sequence_status)
    db.session.add(sequence)
    db.session.flush()
    step = Step(sequence_id=sequence.id, position=0, kind="email", subject="Hi", body="Hello")
    db.session.add(step)
    db.session.flush()
    enrollment = Enrollment(lead_id=lead.id, sequence_id=sequence.id, step_id=step.id,
                            status="active")
    db.session.add(enrollment)
    db.session.flush()
    send = Send(enrollment_id=enrollment.id, step_id=step.id, lead_id=lead.id, status=status,
                subject="Hi", sent_at=utcnow() - sent_ago if status == "sent" else None)
    db.session.add(send)
    db.session.commit()
    return send


def tracked(send: Send, *urls: str) -> tuple[links.Tracker, list[str]]:
    tracker = links.prepare(send)
    out = [tracker.rewrite(url) for url in urls]
    db.session.commit()
    return tracker, out


def path(url: str) -> str:
    return url.split("kindling.test", 1)[1]


def flush() -> int:
    db.session.commit()
    count = writer.flush()
    db.session.expire_all()
    return count


def events(type: str | None = None, lead_id: int | None = None) -> list[Event]:
    db.session.expire_all()
    query = sa.select(Event).order_by(Event.occurred_at, Event.id)
    if type:
        query = query.where(Event.type == type)
    if lead_id:
        query = query.where(Event.lead_id == lead_id)
    return db.session.scalars(query).all()


def hit(client, url: str, *, ua: str = BROWSER, ip: str = HOME_IP, method: str = "GET",
        headers: dict[str, str] | None = None):
    return client.open(url, method=method, headers={"User-Agent": ua, **(headers or {})},
                       environ_base={"REMOTE_ADDR": ip})


class SendGridSigner:
    """A test key pair standing in for SendGrid's: the public half goes in the config."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": ts,
                "Content-Type": "application/json"}

    def post(self, client, events: list[dict[str, Any]], **kwargs: Any):
        body = json.dumps(events).encode()
        return client.post("/webhooks/sendgrid", data=body, headers=self.headers(body, **kwargs))


def sg_event(send: Send | None, event: str, sg_event_id: str, *, email: str = "ann@example.com",
             ago: int = 60, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"email": email, "timestamp": int(time.time()) - ago, "event": event,
                            "sg_event_id": sg_event_id,
                            "sg_message_id": "msg1.filter0001.16648.5515E0B88.0"}
    if send is not None:
        body.update(send_id=str(send.id), enrollment_id=str(send.enrollment_id))
    body.update(extra)
    return body

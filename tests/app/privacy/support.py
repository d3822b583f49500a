"""A person with every kind of data Kindling keeps, and a scan for their address everywhere."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import change_stage, record_event
from app.leads.work import LeadNote
from app.mail.ledger import MailDelivery
from app.outcomes.models import Outcome
from app.privacy import consent
from app.queue import connection
from app.sales.models import Alert
from app.webhooks.models import WebhookMessage
from forms import consents, pipeline
from forms.admin import create_form
from forms.models import FormField
from nurture.enrollment import enroll
from nurture.suppression import suppress
from nurture.tracking.models import Visitor
from tests.nurture.factories import make_sequence, work

ADDRESS = "ann.person@example.com"


def person_with_everything(address: str = ADDRESS) -> Lead:
    """Through the real paths where they are cheap (form submit, nurture send to the local
    outbox), rows written directly where a whole flow would only cost time."""
    news = consent.define("product_news", "Product news", "Email me product news.")
    form = create_form("Guide")
    form.fields.append(FormField(name="first_name", label="First name", type="text",
                                 position=1))
    form.min_submit_seconds = 0
    consents.configure(form, {news.id: "ask"})
    db.session.commit()
    data = {"email": address.upper(), "first_name": "Annabel", "consent_product_news": True,
            "utm_source": "newsletter", "landing_url": f"https://acme.example/?e={address}"}
    result = pipeline.accept(form, data, {**data, "note": f"raw {address}"},
                             pipeline.Context(ip="203.0.113.77", user_agent="Firefox",
                                              visitor_id="v-ann-1", channel="hosted"))
    lead = result.lead
    assert lead is not None
    sequence = make_sequence(required_purpose_id=news.id)
    enroll(lead.id, sequence.id, "test")
    db.session.commit()
    work()  # the first email goes out: a send, its links, an .eml file in the local outbox
    lead = db.session.get(Lead, lead.id)
    record_event(lead, "page_viewed", url=f"https://acme.example/pricing?email={address}",
                 data={"title": "Pricing", "campaign_id": 1}, visitor_id="v-ann-1",
                 occurred_at=utcnow() - timedelta(days=2))
    change_stage(lead, "mql", actor="user", reason=f"Called {address}, keen")
    db.session.add(Alert(key=f"mql:{lead.id}", kind="mql", lead_id=lead.id,
                         recipient="sales@example.com",
                         data={"name": "Annabel", "email": address}))
    db.session.add(MailDelivery(key=f"asset:{lead.id}", purpose="asset", lead_id=lead.id,
                                subject="Annabel, your guide"))
    db.session.add(Outcome(lead_id=lead.id, stage="opportunity", actor="user",
                           reason=f"Deal with {address}"))
    db.session.add(Visitor(visitor_id="v-ann-2", lead_id=lead.id, source="click"))
    suppress(address, "bounce", "webhook")
    db.session.add(LeadNote(lead_id=lead.id, body=f"Spoke to Annabel ({address})"))
    db.session.add(WebhookMessage(msg_id="msg_1", event_type="lead.updated", payload={
        "type": "lead.updated", "data": {"lead": {"id": lead.id, "email": address}}}))
    db.session.commit()
    # Outside the database: a spilled hit, a buffered hit and a queued job naming the address.
    spill = Path(current_app.instance_path) / "tracking-spill"
    spill.mkdir(parents=True, exist_ok=True)
    (spill / "1.jsonl").write_text(json.dumps({"url": f"/x?e={address}"}) + "\n"
                                   + json.dumps({"url": "/other"}) + "\n")
    connection().rpush("kindling:tracking:events", json.dumps({"email": address}), "{}")
    from app.queue import get_queue

    get_queue("default").enqueue("app.privacy.seed.seed_privacy", address)
    return lead


def _text_columns(table: sa.Table) -> list[sa.Column]:
    kinds = (sa.String, sa.Text, sa.JSON)
    return [c for c in table.columns if isinstance(c.type, kinds)
            or isinstance(getattr(c.type, "impl", None), kinds)]


def scan_database(address: str) -> list[str]:
    """Every text and JSON column of every table: where the address (any case) still is."""
    found = []
    needle = f"%{address.lower()}%"
    for table in db.metadata.sorted_tables:
        for column in _text_columns(table):
            text = sa.func.lower(sa.cast(column, sa.Text))
            hits = db.session.scalar(sa.select(sa.func.count()).select_from(table)
                                     .where(text.like(needle)))
            if hits:
                found.append(f"{table.name}.{column.name}")
    return found


def scan_files(address: str) -> list[str]:
    needle = address.lower().encode()
    root = Path(current_app.instance_path)
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and needle in p.read_bytes().lower()]


def scan_redis(address: str) -> list[str]:
    import zlib

    needle = address.lower().encode()
    conn: Any = connection()
    found = []
    for key in conn.scan_iter():
        kind = conn.type(key)
        values: list[bytes] = []
        if kind == b"string":
            values = [conn.get(key)]
        elif kind == b"list":
            values = conn.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(conn.smembers(key))
        elif kind == b"zset":
            values = conn.zrange(key, 0, -1)
        elif kind == b"hash":
            values = [x for kv in conn.hgetall(key).items() for x in kv]
        for value in values:
            try:
                value = value + zlib.decompress(value)
            except zlib.error:
                pass
            if needle in key.lower() or needle in value.lower():
                found.append(key.decode())
                break
    return found

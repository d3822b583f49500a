"""Story helpers for the sales tests: leads, MQLs, reading alert emails."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

import sqlalchemy as sa

from app import outbox
from app.db import db
from app.leads.models import Lead, StageChange
from app.leads.service import change_stage, upsert_lead
from app.sales.models import SalesSettings
from tests.helpers import outbox_files

LINK = re.compile(r"http://kindling\.test(/sales/[ar]/[A-Za-z0-9._-]+)")


def make_lead(email: str = "dana@acme.example.com", **values) -> Lead:
    values = {"first_name": "Dana", "last_name": "Okafor", "company": "Acme", **values}
    lead = upsert_lead(email, values, source="test").lead
    db.session.commit()
    return lead


def make_mql(lead: Lead, actor: str = "scoring") -> StageChange:
    """As scoring does it: change_stage and commit; the outbox row is then enqueued."""
    change = change_stage(lead, "mql", reason="Score 80 ≥ 70", actor=actor)
    db.session.commit()
    outbox.dispatch_committed()
    return change


def settings(**values) -> SalesSettings:
    row = SalesSettings.load()
    for key, value in values.items():
        setattr(row, key, value)
    db.session.add(row)
    db.session.commit()
    return row


def read_mail(path: Path):
    with path.open("rb") as fh:
        return BytesParser(policy=policy.default).parse(fh)


def mails() -> list:
    return [read_mail(p) for p in outbox_files()]


def body(message, subtype: str) -> str:
    return message.get_body(preferencelist=(subtype,)).get_content()


def links_in(message) -> dict[str, str]:
    """{'accept': path, 'reject': path} from the text part."""
    found = LINK.findall(body(message, "plain"))
    return {("accept" if p.startswith("/sales/a/") else "reject"): p for p in found}


def stage_changes(lead: Lead) -> list[StageChange]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(StageChange).where(StageChange.lead_id == lead.id)
                                   .order_by(StageChange.id)))


def handed_off(owner_email: str | None = "sam@example.com", **lead_values):
    """A lead made MQL and handed off (listener run in-process). Returns (lead, alert)."""
    from app.sales.jobs import on_stage_change
    from app.sales.models import Alert
    from tests.helpers import make_user

    if owner_email:
        make_user(owner_email, "sales")
    lead = make_lead(**lead_values)
    change = make_mql(lead)
    on_stage_change(change.id)
    alert = db.session.scalar(sa.select(Alert).order_by(Alert.id.desc()).limit(1))
    return lead, alert


def link(purpose: str, alert) -> str:
    from app.sales import links

    return links.ROUTES[purpose] + links.make_token(purpose, alert.id, alert.lead_id)

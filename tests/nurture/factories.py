"""Story-like builders for nurture tests: a lead, a live sequence, a worker run."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.db import db
from app.leads.models import Event, Lead
from app.leads.service import upsert_lead
from app.worker import run_worker
from nurture import engine
from nurture.models import ALL_DAYS, Enrollment, Send, Sequence, StepKind
from nurture.steps import activate, add_step


def make_lead(email: str = "ann@example.com", **values: Any) -> Lead:
    values.setdefault("first_name", "Ann")
    lead = upsert_lead(email, values, source="test").lead
    db.session.commit()
    return lead


def email_step(subject: str = "Hello {{ lead.first_name }}",
               body: str = "Hi **{{ lead.first_name }}**, [read this](https://example.com/guide).",
               **extra: Any) -> dict[str, Any]:
    return {"kind": StepKind.EMAIL, "subject": subject, "body": body, **extra}


def wait_step(seconds: int = 86400, until: str = "") -> dict[str, Any]:
    return {"kind": StepKind.WAIT, "wait_seconds": seconds, "wait_until": until}


def make_sequence(*steps: dict[str, Any], active: bool = True, **settings: Any) -> Sequence:
    settings.setdefault("window_days", list(ALL_DAYS))
    sequence = Sequence(name=settings.pop("name", "Welcome"), **settings)
    db.session.add(sequence)
    db.session.flush()
    for spec in steps or (email_step(),):
        spec = dict(spec)
        add_step(sequence, spec.pop("kind"), **spec)
    if active:
        assert activate(sequence) == []
    db.session.commit()
    return sequence


def drain() -> None:
    """Let a real (forking, burst) worker run everything queued. It runs in an app context of
    its own, so the test's session (and the objects it holds) survives; our transaction ends
    first so the worker's writes are what we read next."""
    db.session.commit()
    with current_app.app_context():
        run_worker(burst=True)
    db.session.expire_all()


def work() -> None:
    """Tick, then drain the queues with a real worker."""
    engine.tick()
    drain()


def sends() -> list[Send]:
    db.session.expire_all()
    return db.session.scalars(sa.select(Send).order_by(Send.id)).all()


def enrollment_of(lead_id: int) -> Enrollment:
    db.session.expire_all()
    return db.session.scalars(sa.select(Enrollment).where(Enrollment.lead_id == lead_id)
                              .order_by(Enrollment.id.desc())).first()


def events(lead_id: int, type: str) -> list[Event]:
    db.session.expire_all()
    return db.session.scalars(sa.select(Event).where(Event.lead_id == lead_id,
                                                     Event.type == type)).all()

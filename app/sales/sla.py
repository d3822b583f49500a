"""The sales SLA: an MQL without an answer after N working hours is re-alerted to its owner;
after N more it is escalated to the manager address. Periodic, and idempotent: the alert keys
allow one reminder and one escalation per handoff."""

from __future__ import annotations

import sqlalchemy as sa

from app import outbox
from app.db import db, utcnow
from app.jobs import job
from app.leads.models import Lead, Stage
from app.sales import alerts
from app.sales.models import Assignment, SalesSettings
from app.sales.worktime import working_hours_between


def due(now=None) -> list[tuple[Assignment, str]]:
    """(assignment, 'reminder' | 'escalation') that are due now."""
    settings = SalesSettings.load()
    now = now or utcnow()
    open_ = db.session.scalars(
        sa.select(Assignment).join(Lead, Lead.id == Assignment.lead_id)
        .where(Assignment.outcome.is_(None), Lead.stage == Stage.MQL.value)
        .order_by(Assignment.id)).all()
    out = []
    for assignment in open_:
        waited = working_hours_between(assignment.created_at, now, settings)
        kinds = {a.kind for a in assignment.alerts}
        if waited >= settings.sla_hours and "reminder" not in kinds:
            out.append((assignment, "reminder"))
        if waited >= 2 * settings.sla_hours and "escalation" not in kinds:
            out.append((assignment, "escalation"))
    return out


def run_checks() -> int:
    """Create the reminders and escalations that are due; returns how many. Commits."""
    settings = SalesSettings.load()
    made = 0
    for assignment, kind in due():
        if kind == "reminder":
            recipient = assignment.user.email if assignment.user else settings.team_email
        else:
            recipient = settings.manager_email
        if not recipient:
            continue
        alert = alerts.create(kind, recipient, assignment=assignment,
                              user_id=assignment.user_id if kind == "reminder" else None,
                              key=alerts.alert_key(kind, assignment, recipient),
                              data={"sla_hours": settings.sla_hours})
        made += alert is not None
    db.session.commit()
    outbox.dispatch_committed()
    return made


@job
def check() -> int:
    """Periodic entry point (see add_periodic in app.sales.init_app)."""
    return run_checks()

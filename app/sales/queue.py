"""The sales queue: my MQLs waiting for an answer, oldest first; managers see everyone's."""

from __future__ import annotations

import sqlalchemy as sa
from flask import render_template, request
from flask_login import current_user

from app.auth.models import Role, User
from app.auth.roles import sales_required, staff_required
from app.db import db, utcnow
from app.leads.models import Lead, Stage
from app.sales import links
from app.sales.models import Assignment, SalesRep, SalesSettings
from app.sales.web import bp
from app.sales.worktime import working_hours_between


def is_manager(user: User) -> bool:
    if user.role == Role.ADMIN.value:
        return True
    return bool(db.session.scalar(sa.select(SalesRep.is_manager)
                                  .where(SalesRep.user_id == user.id)))


def waiting(owner_id: int | None = None, everyone: bool = False) -> list[Assignment]:
    """Open handoffs (lead still MQL, no decision), oldest first."""
    query = (sa.select(Assignment).join(Lead, Lead.id == Assignment.lead_id)
             .where(Assignment.outcome.is_(None), Lead.stage == Stage.MQL.value)
             .order_by(Assignment.created_at, Assignment.id))
    if not everyone:
        query = query.where(Assignment.user_id == owner_id)
    return list(db.session.scalars(query.limit(500)))


def sla_clock(assignment: Assignment, settings: SalesSettings, now=None) -> tuple[str, bool]:
    """How long the handoff has waited in working hours against the SLA, and whether late."""
    waited = working_hours_between(assignment.created_at, now or utcnow(), settings)
    late = waited >= settings.sla_hours
    if late:
        return f"{waited - settings.sla_hours:.1f} h over the {settings.sla_hours} h SLA", True
    return f"{waited:.1f} h of {settings.sla_hours} h", False


@bp.route("/queue")
@staff_required
def queue():
    # Marketers read the whole queue (no answer links: deciding is for sales).
    reader = not current_user.has_role(Role.SALES)
    manager = reader or is_manager(current_user)
    owner = request.args.get("owner", type=int) if manager else None
    everyone = manager and (request.args.get("view") == "all" or (reader and owner is None))
    rows = waiting(owner if owner is not None else current_user.id,
                   everyone=everyone and owner is None)
    settings = SalesSettings.load()
    items = []
    for assignment in rows:
        first = next((a for a in assignment.alerts if a.kind == "mql"), None)
        actions = None
        if first is not None and not reader:
            actions = (links.ROUTES["accept"] + links.make_token("accept", first.id, first.lead_id),
                       links.ROUTES["reject"] + links.make_token("reject", first.id, first.lead_id))
        undelivered = [a for a in assignment.alerts if a.undelivered]
        items.append((assignment, actions, undelivered, sla_clock(assignment, settings)))
    owners = db.session.scalars(sa.select(User).where(User.role == Role.SALES.value)
                                .order_by(User.email)).all() if manager else []
    return render_template("sales/queue.html", items=items, manager=manager, owners=owners,
                           owner=owner, everyone=everyone, reader=reader)


@bp.route("/my-leads")
@sales_required
def my_leads():
    """The leads I own that sales accepted (SQL, opportunity): last activity, next task."""
    from app.leads.work import LeadTask

    next_due = (sa.select(LeadTask.lead_id, sa.func.min(LeadTask.due_at).label("due"))
                .where(LeadTask.done_at.is_(None)).group_by(LeadTask.lead_id).subquery())
    rows = db.session.execute(
        sa.select(Lead, next_due.c.due).outerjoin(next_due, next_due.c.lead_id == Lead.id)
        .where(Lead.owner_id == current_user.id,
               Lead.stage.in_((Stage.SQL.value, Stage.OPPORTUNITY.value)))
        .order_by(Lead.last_activity_at.desc(), Lead.id.desc()).limit(500)).all()
    tasks = {}
    ids = [lead.id for lead, due in rows if due is not None]
    if ids:
        for task in db.session.scalars(sa.select(LeadTask).where(
                LeadTask.lead_id.in_(ids), LeadTask.done_at.is_(None))
                .order_by(LeadTask.due_at, LeadTask.id)):
            tasks.setdefault(task.lead_id, task)
    accepted = dict(db.session.execute(
        sa.select(Assignment.lead_id, sa.func.max(Assignment.decided_at))
        .where(Assignment.outcome == "accepted", Assignment.decided_by_id == current_user.id,
               Assignment.lead_id.in_([lead.id for lead, _ in rows] or [0]))
        .group_by(Assignment.lead_id)).all())
    return render_template("sales/my_leads.html", rows=[(lead, tasks.get(lead.id),
                                                         accepted.get(lead.id))
                                                        for lead, _ in rows])


def lead_panel(lead: Lead):
    """The handoff on the lead page: owner, why, alerts (undelivered ones stand out)."""
    from markupsafe import Markup

    from app.sales.on_lead_page import decision_forms

    assignments = db.session.scalars(sa.select(Assignment).where(Assignment.lead_id == lead.id)
                                     .order_by(Assignment.id.desc()).limit(5)).all()
    if not assignments:
        return Markup("")
    return Markup(render_template("sales/_lead_panel.html", assignments=assignments, lead=lead,
                                  decision=decision_forms(lead)))


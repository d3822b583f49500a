"""The sales queue: my MQLs waiting for an answer, oldest first; managers see everyone's."""

from __future__ import annotations

import sqlalchemy as sa
from flask import render_template, request
from flask_login import current_user

from app.auth.models import Role, User
from app.auth.roles import sales_required
from app.db import db
from app.leads.models import Lead, Stage
from app.sales import links
from app.sales.models import Assignment, SalesRep
from app.sales.web import bp


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


@bp.route("/queue")
@sales_required
def queue():
    manager = is_manager(current_user)
    owner = request.args.get("owner", type=int) if manager else None
    everyone = manager and request.args.get("view") == "all"
    rows = waiting(owner if owner is not None else current_user.id,
                   everyone=everyone and owner is None)
    items = []
    for assignment in rows:
        first = next((a for a in assignment.alerts if a.kind == "mql"), None)
        actions = None
        if first is not None:
            actions = (links.ROUTES["accept"] + links.make_token("accept", first.id, first.lead_id),
                       links.ROUTES["reject"] + links.make_token("reject", first.id, first.lead_id))
        undelivered = [a for a in assignment.alerts if a.undelivered]
        items.append((assignment, actions, undelivered))
    owners = db.session.scalars(sa.select(User).where(User.role == Role.SALES.value)
                                .order_by(User.email)).all() if manager else []
    return render_template("sales/queue.html", items=items, manager=manager, owners=owners,
                           owner=owner, everyone=everyone)


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


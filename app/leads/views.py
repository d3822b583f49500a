"""Lead pages in the admin: the list and one lead's whole story."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, render_template, request

from app.auth.roles import staff_required
from app.db import db
from app.leads import lifecycle, timeline, work
from app.leads.models import Lead, Stage

bp = Blueprint("leads", __name__, url_prefix="/admin/leads")

PAGE_SIZE = 50


@bp.route("/")
@staff_required
def index():
    q = (request.args.get("q") or "").strip()
    stage = request.args.get("stage") or ""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = sa.select(Lead)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(sa.or_(Lead.email.like(like), sa.func.lower(Lead.company).like(like),
                                   sa.func.lower(Lead.last_name).like(like)))
    if stage in {s.value for s in Stage}:
        query = query.where(Lead.stage == stage)
    query = query.order_by(Lead.updated_at.desc(), Lead.id.desc())
    leads = db.paginate(query, page=page, per_page=PAGE_SIZE, error_out=False)
    return render_template("leads/index.html", leads=leads, q=q, stage=stage, stages=list(Stage))


@bp.route("/<int:lead_id>")
@staff_required
def show(lead_id: int):
    from app.leads.record import forms_for

    lead = db.session.get(Lead, lead_id) or abort(404)
    cursor = timeline.Cursor.load(request.args.get("before"))
    items, next_cursor = timeline.page(lead, cursor)
    return render_template("leads/show.html", lead=lead, items=items,
                           next_cursor=next_cursor.dump() if next_cursor else None,
                           paged=cursor is not None, tasks=work.open_tasks(lead.id),
                           allowed=lifecycle.allowed_moves(lead.stage), **forms_for(lead))

"""Lead pages in the admin: the list and one lead's whole story."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from app.auth.roles import staff_required
from app.db import db
from app.leads import lifecycle, timeline, work
from app.leads.models import Lead

bp = Blueprint("leads", __name__, url_prefix="/admin/leads")


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

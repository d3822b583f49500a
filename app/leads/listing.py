"""The leads list (`/admin/leads`): filters in the query string, sorts, keyset pages, saved
views and bulk actions on the ticked leads or on every match."""

from __future__ import annotations

import functools
import os
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from app.auth.models import User
from app.auth.roles import staff_required
from app.db import db, utcnow
from app.leads import bulk, saved_views
from app.leads.engagement import current, half_life_days
from app.leads.models import Stage
from app.leads.query import (
    GRADES,
    SORT_LABELS,
    LeadQuery,
    count_upto,
    grade_bands,
    grade_of,
    page,
)
from app.leads.views import bp

PAGE_SIZE = 50
COUNT_CAP = 10_000


def _owners(chosen: str = "") -> list[User]:
    """The active users, and the one the filter names if they were deactivated since (the
    box shows the filter that applies; submitting it again keeps it)."""
    wanted: sa.ColumnElement[bool] = User.active.is_(True)
    if chosen.isdigit():
        wanted = sa.or_(wanted, User.id == int(chosen))
    return list(db.session.scalars(sa.select(User).where(wanted).order_by(User.email)))


def _campaigns(chosen: int | None = None) -> list[tuple[int, str]]:
    """The first 500 campaigns by name, for the filter (the campaigns package owns the table),
    and the one the filter names if it is not among them."""
    table = sa.table("campaigns", sa.column("id", sa.Integer), sa.column("name", sa.String))
    try:
        found = [(row.id, row.name) for row in db.session.execute(
            sa.select(table.c.id, table.c.name).order_by(table.c.name).limit(500))]
        if chosen is not None and chosen not in {known for known, _ in found}:
            found += [(row.id, row.name) for row in db.session.execute(
                sa.select(table.c.id, table.c.name).where(table.c.id == chosen))]
        return found
    except sa.exc.DBAPIError:
        db.session.rollback()
        return []


@bp.route("/")
@staff_required
def index():
    lq = LeadQuery.parse(request.args)
    now = utcnow()
    leads, next_cursor = page(lq, request.args.get("after"), PAGE_SIZE, now)
    counted = count_upto(lq, COUNT_CAP, now) if not request.args.get("after") else None
    status = 400 if lq.errors else 200
    half_life = half_life_days()  # once, not once per lead (it reads the active scoring rules)
    return render_template(
        "leads/index.html", lq=lq, leads=leads, next_cursor=next_cursor, counted=counted,
        cap=COUNT_CAP, engagement={lead.id: current(lead, now, half_life) for lead in leads},
        grade_of=functools.partial(grade_of, bands=grade_bands()),  # the bands read once
        stages=list(Stage), grades=GRADES, sorts=SORT_LABELS, owners=_owners(lq.owner),
        campaigns=_campaigns(lq.campaign), views=saved_views.visible_to(current_user.id),
        actions=[a for a in bulk.actions().values() if current_user.has_role(*a.roles)],
        query_string=urlencode(lq.args(), doseq=True), paged=bool(request.args.get("after")),
    ), status


@bp.route("/views", methods=["POST"])
@staff_required
def save_view():
    name = (request.form.get("name") or "").strip()[:100]
    query = (request.form.get("query") or "")[:4000]
    if not name:
        flash("Give the view a name.", "error")
        return redirect(url_for("leads.index") + ("?" + query if query else ""))
    saved_views.save(current_user.id, name, query, request.form.get("shared") == "yes")
    db.session.commit()
    flash(f"View “{name}” saved.", "info")
    return redirect(url_for("leads.index") + ("?" + query if query else ""))


@bp.route("/views/<int:view_id>/delete", methods=["POST"])
@staff_required
def delete_view(view_id: int):
    view = db.session.get(saved_views.SavedView, view_id)
    if view is None or view.user_id != current_user.id:
        abort(404)
    db.session.delete(view)
    db.session.commit()
    flash(f"View “{view.name}” deleted.", "info")
    return redirect(url_for("leads.index"))


@bp.route("/bulk", methods=["POST"])
@staff_required
def start_bulk():
    query = (request.form.get("query") or "")[:4000]
    back = url_for("leads.index") + ("?" + query if query else "")
    action = bulk.actions().get(request.form.get("action") or "")
    if action is None or not current_user.has_role(*action.roles):
        flash("Choose a bulk action.", "error")
        return redirect(back)
    params: dict[str, str] = {}
    if action.choice is not None:
        name, label, choices = action.choice
        value = request.form.get(name) or ""
        if value not in {str(c.value) for c in choices()}:
            flash(f"{action.label}: choose {label.lower()}.", "error")
            return redirect(back)
        params[name] = value
    if action.needs_reason:
        reason = (request.form.get("reason") or "").strip()[:2000]
        if not reason:
            flash(f"{action.label}: a reason is required; nothing changed.", "error")
            return redirect(back)
        params["reason"] = reason
    if request.form.get("scope") == "all":
        lq = LeadQuery.parse(MultiDict(_pairs(query)))
        job = bulk.start(action.name, params, current_user, lead_ids=None, lq=lq)
    else:
        ids = sorted({int(v) for v in request.form.getlist("lead") if v.isdigit()})
        if not ids:
            flash("Tick the leads first, or choose “every lead matching the filter”.", "error")
            return redirect(back)
        job = bulk.start(action.name, params, current_user, lead_ids=ids, lq=None)
    return redirect(url_for("leads.bulk_status", bulk_id=job.id))


def _pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=False)


@bp.route("/bulk/<int:bulk_id>")
@staff_required
def bulk_status(bulk_id: int):
    job = db.session.get(bulk.BulkJob, bulk_id) or abort(404)
    action = bulk.actions().get(job.action)
    return render_template("leads/bulk.html", job=job, action=action,
                           back=url_for("leads.index") + (
                               "?" + urlencode(job.query, doseq=True) if job.query else ""))


@bp.route("/bulk/<int:bulk_id>/file")
@staff_required
def bulk_file(bulk_id: int):
    job = db.session.get(bulk.BulkJob, bulk_id) or abort(404)
    if job.status != "done" or not job.file_name:
        abort(404)
    path = os.path.join(bulk.export_folder(), job.file_name)
    if not os.path.exists(path):
        abort(404)
    with open(path, "rb") as handle:
        data = handle.read()
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{job.file_name}"'})



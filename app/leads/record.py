"""The lead page's actions: edit the profile, move the stage (with a reason), notes, tasks.

Every change is recorded with who made it (an event or a StageChange) and shows in the
timeline. A refusal (a move the lifecycle forbids, a blank reason) changes nothing and
renders the page again with the message (400).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, flash, g, redirect, url_for
from flask_login import current_user
from wtforms import SelectChoice

from app.auth.models import Role, User
from app.auth.roles import staff_required
from app.db import db, utcnow
from app.leads import lifecycle
from app.leads.models import Lead
from app.leads.record_forms import NoteForm, ProfileForm, StageForm, TaskForm
from app.leads.service import PROFILE_FIELDS, record_event
from app.leads.views import bp
from app.leads.work import LeadTask, add_note, add_task


def staff_choices() -> list[SelectChoice]:
    users = db.session.scalars(sa.select(User).where(User.active.is_(True))
                               .order_by(User.email)).all()
    return [SelectChoice(u.id, f"{u.email} ({Role(u.role).value})") for u in users]


def forms_for(lead: Lead) -> dict:
    """The page's forms: the one just posted (with its errors), the others fresh."""
    posted = getattr(g, "lead_form", None)
    profile = ProfileForm(formdata=None, obj=lead, prefix="profile")
    stage = StageForm(formdata=None, prefix="move")
    note = NoteForm(formdata=None, prefix="note")
    task = TaskForm(formdata=None, prefix="task")
    task.owner_id.data = current_user.id
    chosen: dict[str, Any] = {"profile": profile, "stage": stage, "note": note, "task": task}
    if posted is not None:
        chosen[posted[0]] = posted[1]
    chosen["stage"].stage.choices = [SelectChoice(s.value, s.label)
                                     for s in lifecycle.allowed_moves(lead.stage)]
    chosen["task"].owner_id.choices = staff_choices()
    return chosen


def _again(lead: Lead, name: str, form, message: str | None = None):
    """Render the lead page again with `form`'s errors: nothing was saved."""
    db.session.rollback()
    if message:
        flash(message, "error")
    g.lead_form = (name, form)
    return current_app.view_functions["leads.show"](lead_id=lead.id), 400


def _lead(lead_id: int) -> Lead:
    return db.session.get(Lead, lead_id) or abort(404)


ERASED = "This person was erased on request: their page takes no profile, note or task again."


def _erased(lead: Lead):
    """The page again, saying why nothing was saved (an old tab posting to a tombstone)."""
    flash(ERASED, "error")
    return current_app.view_functions["leads.show"](lead_id=lead.id), 410


@bp.route("/<int:lead_id>/profile", methods=["POST"])
@staff_required
def edit_profile(lead_id: int):
    lead = _lead(lead_id)
    if lead.erased:
        return _erased(lead)
    form = ProfileForm(prefix="profile")
    if not form.validate_on_submit():
        return _again(lead, "profile", form, "Nothing was saved: please correct the profile.")
    changes = {}
    for name in PROFILE_FIELDS:
        new = (getattr(form, name).data or "").strip()
        old = getattr(lead, name) or ""
        if new != old:
            setattr(lead, name, new)
            changes[name] = [old, new]
    if changes:
        record_event(lead, "profile_edited", data={"changes": changes, "by": current_user.email,
                                                   "user_id": current_user.id})
        db.session.commit()
        flash(f"Profile saved ({', '.join(c.replace('_', ' ') for c in changes)}).", "info")
    else:
        flash("Nothing changed.", "info")
    return redirect(url_for("leads.show", lead_id=lead.id))


@bp.route("/<int:lead_id>/stage", methods=["POST"])
@staff_required
def move_stage(lead_id: int):
    lead = _lead(lead_id)
    form = StageForm(prefix="move")
    form.stage.choices = [SelectChoice(s.value, s.label)
                          for s in lifecycle.allowed_moves(lead.stage)]
    if not form.validate_on_submit():
        return _again(lead, "stage", form, "The stage did not change: a reason is required.")
    try:
        change = lifecycle.move(lead, form.stage.data, reason=form.reason.data,
                                actor="user", actor_user_id=current_user.id, by=current_user)
    except lifecycle.ForbiddenMove as exc:
        form.stage.errors = [str(exc)]
        return _again(lead, "stage", form, f"The stage did not change. {exc}")
    db.session.commit()
    flash(f"Moved to {lead.stage_label}.", "info")
    return redirect(url_for("leads.show", lead_id=lead.id, _anchor=f"stage-{change.id}"))


@bp.route("/<int:lead_id>/notes", methods=["POST"])
@staff_required
def add_lead_note(lead_id: int):
    lead = _lead(lead_id)
    if lead.erased:
        return _erased(lead)
    form = NoteForm(prefix="note")
    if not form.validate_on_submit():
        return _again(lead, "note", form)
    add_note(lead.id, form.body.data, current_user.id)
    db.session.commit()
    flash("Note added.", "info")
    return redirect(url_for("leads.show", lead_id=lead.id))


@bp.route("/<int:lead_id>/tasks", methods=["POST"])
@staff_required
def add_lead_task(lead_id: int):
    lead = _lead(lead_id)
    if lead.erased:
        return _erased(lead)
    form = TaskForm(prefix="task")
    form.owner_id.choices = staff_choices()
    if not form.validate_on_submit():
        return _again(lead, "task", form, "The task was not added: please correct it.")
    due = form.due_at.data.replace(tzinfo=UTC)
    add_task(lead.id, form.title.data, due, form.owner_id.data or None, current_user.id)
    db.session.commit()
    flash("Task added.", "info")
    return redirect(url_for("leads.show", lead_id=lead.id))


@bp.route("/<int:lead_id>/tasks/<int:task_id>/done", methods=["POST"])
@staff_required
def finish_task(lead_id: int, task_id: int):
    task = db.session.get(LeadTask, task_id)
    if task is None or task.lead_id != lead_id:
        abort(404)
    if task.done_at is None:
        task.done_at = utcnow()
        db.session.commit()
        flash(f"Done: {task.title}.", "info")
    return redirect(url_for("leads.show", lead_id=lead_id))

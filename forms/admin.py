"""The marketer's screens: forms, the builder, the embed snippet, submissions and quarantine.

Every change to a definition calls `form.touch()`, so the cached WTForms class is rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from app.auth.roles import marketer_required
from app.db import db
from app.privacy import consent
from forms import consents, pipeline
from forms.admin_forms import (
    FieldBasicsForm,
    FieldForm,
    NewFormForm,
    SettingsForm,
    domains_of,
    lines,
    origins_of,
)
from forms.builder import form_class
from forms.models import FieldType, Form, FormField, Submission, SubmissionStatus

PAGE_SIZE = 50

bp = Blueprint("forms", __name__, url_prefix="/admin/forms", template_folder="templates")


def create_form(name: str) -> Form:
    """A new form with its email field (every form has exactly one)."""
    form = Form(name=name, fields=[FormField(name="email", label="Email",
                                             type=FieldType.EMAIL.value, required=True,
                                             max_length=320, position=0)])
    db.session.add(form)
    db.session.flush()
    return form


def _form(form_id: int) -> Form:
    return db.session.get(Form, form_id) or abort(404)


def _spec(form: Form, field_id: int) -> FormField:
    spec = db.session.get(FormField, field_id)
    if spec is None or spec.form_id != form.id:
        abort(404)
    return spec


def _renumber(specs: list[FormField]) -> None:
    for position, spec in enumerate(specs):
        spec.position = position


def embed_snippet(form: Form) -> str:
    base = current_app.config["BASE_URL"]
    return (f'<script src="{base}/f/{form.key}/embed.js" async></script>\n'
            f'<div data-kindling-form="{form.key}"></div>')


@bp.route("/", methods=["GET", "POST"])
@marketer_required
def index():
    new = NewFormForm()
    if new.validate_on_submit():
        form = create_form(new.name.data.strip())
        db.session.commit()
        flash(f"Form “{form.name}” created. Add its fields below.", "info")
        return redirect(url_for("forms.edit", form_id=form.id))
    counts = dict(db.session.execute(
        sa.select(Submission.form_id, sa.func.count()).group_by(Submission.form_id)).all())
    quarantined = db.session.scalar(sa.select(sa.func.count()).where(
        Submission.status == SubmissionStatus.QUARANTINED.value))
    rows = db.session.scalars(sa.select(Form).order_by(Form.name)).all()
    return render_template("forms/admin/index.html", forms=rows, counts=counts, new=new,
                           quarantined=quarantined), 400 if new.errors else 200


@bp.route("/<int:form_id>", methods=["GET", "POST"])
@marketer_required
def edit(form_id: int):
    form = _form(form_id)
    settings = SettingsForm(obj=form) if request.method == "GET" else SettingsForm()
    if request.method == "GET":
        settings.blocked_domains.data = "\n".join(form.blocked_domains or [])
        settings.allowed_origins.data = "\n".join(form.allowed_origins or [])
    if settings.validate_on_submit():
        for name in ("name", "submit_label", "success_message", "consent_enabled",
                     "consent_required", "consent_text", "consent_version", "double_opt_in",
                     "confirmation_expiry_hours"):
            setattr(form, name, getattr(settings, name).data)
        form.min_submit_seconds = settings.min_submit_seconds.data or 0
        form.blocked_domains = domains_of(settings.blocked_domains.data)
        form.allowed_origins = origins_of(settings.allowed_origins.data)
        form.touch()
        db.session.commit()
        flash("Settings saved.", "info")
        return redirect(url_for("forms.edit", form_id=form.id))
    status = 400 if settings.errors else 200
    return _builder(form, settings=settings, new_field=FieldForm(formdata=None)), status


def _builder(form: Form, **forms):
    # Unbound and prefixed: a preview never picks up the builder's own posted values or ids.
    preview = form_class(form)(formdata=None, meta={"csrf": False}, prefix="preview")
    asked = {c.purpose_id: ("required" if c.required else "ask") for c in form.consents}
    return render_template("forms/admin/edit.html", form=form, preview=preview,
                           snippet=embed_snippet(form), purposes=consent.purposes(),
                           asked=asked, consents_form=FlaskForm(), **forms)


@bp.route("/<int:form_id>/consents", methods=["POST"])
@marketer_required
def set_consents(form_id: int):
    """Which consent purposes the form asks for: not asked, optional or required, each."""
    form = _form(form_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    known = {p.id for p in consent.purposes()}
    choices = {pid: request.form.get(f"purpose-{pid}", "") for pid in known}
    consents.configure(form, choices)
    db.session.commit()
    flash("Consent checkboxes saved.", "info")
    return redirect(url_for("forms.edit", form_id=form.id) + "#consents-title")


@bp.route("/<int:form_id>/fields", methods=["POST"])
@marketer_required
def add_field(form_id: int):
    form = _form(form_id)
    new_field = FieldForm()
    if new_field.validate_on_submit():
        if any(spec.name == new_field.name.data for spec in form.fields):
            new_field.name.errors.append("This form already has a field with that name.")
        else:
            spec = FormField(position=len(form.fields))
            _apply(spec, new_field)
            form.fields.append(spec)
            _renumber(form.fields)
            form.touch()
            db.session.commit()
            flash(f"Field “{spec.label}” added.", "info")
            return redirect(url_for("forms.edit", form_id=form.id) + "#fields")
    settings = SettingsForm(obj=form, formdata=None)
    settings.blocked_domains.data = "\n".join(form.blocked_domains or [])
    settings.allowed_origins.data = "\n".join(form.allowed_origins or [])
    return _builder(form, settings=settings, new_field=new_field), 400


def _apply(spec: FormField, data: FieldForm) -> None:
    spec.name = data.name.data
    spec.label = data.label.data.strip()
    spec.type = data.type.data
    spec.help_text = (data.help_text.data or "").strip()
    spec.required = bool(data.required.data)
    spec.max_length = data.max_length.data
    spec.choices = lines(data.choices.data) if spec.type == FieldType.SELECT.value else []


@bp.route("/<int:form_id>/fields/<int:field_id>", methods=["GET", "POST"])
@marketer_required
def edit_field(form_id: int, field_id: int):
    form = _form(form_id)
    spec = _spec(form, field_id)
    is_email = spec.type == FieldType.EMAIL.value
    cls = FieldBasicsForm if is_email else FieldForm
    editor = cls(obj=spec) if request.method == "GET" else cls()
    if request.method == "GET" and not is_email:
        editor.choices.data = "\n".join(spec.choices or [])
    if editor.validate_on_submit():
        taken = not is_email and any(other.name == editor.name.data and other.id != spec.id
                                     for other in form.fields)
        if taken:
            editor.name.errors.append("This form already has a field with that name.")
        else:
            if is_email:
                spec.label = editor.label.data.strip()
                spec.help_text = (editor.help_text.data or "").strip()
            else:
                _apply(spec, editor)
            form.touch()
            db.session.commit()
            flash(f"Field “{spec.label}” saved.", "info")
            return redirect(url_for("forms.edit", form_id=form.id) + "#fields")
    status = 400 if editor.errors else 200
    return render_template("forms/admin/field.html", form=form, spec=spec, editor=editor,
                           is_email=is_email), status


@bp.route("/<int:form_id>/fields/<int:field_id>/move", methods=["POST"])
@marketer_required
def move_field(form_id: int, field_id: int):
    form = _form(form_id)
    spec = _spec(form, field_id)
    specs = list(form.fields)
    index = specs.index(spec)
    target = index - 1 if request.form.get("direction") == "up" else index + 1
    if 0 <= target < len(specs):
        specs[index], specs[target] = specs[target], specs[index]
        _renumber(specs)
        form.touch()
        db.session.commit()
    return redirect(url_for("forms.edit", form_id=form.id) + "#fields")


@bp.route("/<int:form_id>/fields/<int:field_id>/delete", methods=["POST"])
@marketer_required
def delete_field(form_id: int, field_id: int):
    form = _form(form_id)
    spec = _spec(form, field_id)
    if spec.type == FieldType.EMAIL.value:
        flash("The email field cannot be removed: every lead needs an address.", "error")
    else:
        form.fields.remove(spec)
        _renumber(form.fields)
        form.touch()
        db.session.commit()
        flash(f"Field “{spec.label}” removed. Past submissions keep its values.", "info")
    return redirect(url_for("forms.edit", form_id=form.id) + "#fields")


@bp.route("/submissions")
@bp.route("/<int:form_id>/submissions")
@marketer_required
def submissions(form_id: int | None = None):
    form = _form(form_id) if form_id is not None else None
    query = sa.select(Submission).where(
        Submission.status != SubmissionStatus.QUARANTINED.value)
    if form is not None:
        query = query.where(Submission.form_id == form.id)
    page = _page(query)
    return render_template("forms/admin/submissions.html", form=form, page=page,
                           pager_args={"form_id": form_id} if form_id else {})


@bp.route("/quarantine")
@marketer_required
def quarantine():
    query = sa.select(Submission).where(Submission.status == SubmissionStatus.QUARANTINED.value)
    return render_template("forms/admin/quarantine.html", page=_page(query))


def _page(query):
    number = max(request.args.get("page", 1, type=int) or 1, 1)
    query = query.order_by(Submission.created_at.desc(), Submission.id.desc())
    return db.paginate(query, page=number, per_page=PAGE_SIZE, error_out=False)


@bp.route("/submissions/<int:submission_id>/release", methods=["POST"])
@marketer_required
def release(submission_id: int):
    submission = db.session.get(Submission, submission_id) or abort(404)
    try:
        result = pipeline.release(submission, current_user.id)
    except pipeline.NotReleasable as exc:
        db.session.rollback()
        flash(f"Not released: {exc}", "error")
        return redirect(url_for("forms.quarantine"))
    assert result.lead is not None  # a released submission always has its lead
    flash(f"Released: {result.lead.email_display} is now a lead.", "info")
    return redirect(url_for("forms.quarantine"))

"""The admin's privacy screens: consent purposes and their texts; the lead page's consent panel."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.auth.roles import admin_required, marketer_required
from app.db import db
from app.leads.models import Lead
from app.privacy import consent, erase, export
from app.privacy.models import ConsentPurpose

bp = Blueprint("privacy", __name__, url_prefix="/admin/privacy")


class PurposeForm(FlaskForm):
    key = StringField("Key", validators=[DataRequired(), Length(max=40)],
                      description="Lower-case letters, digits and underscores, e.g. product_news. "
                                  "Imports and the API name the purpose by it; it cannot change.")
    name = StringField("Name", validators=[DataRequired(), Length(max=200)],
                       description="What people and marketers see, e.g. Product news.")
    text = TextAreaField("Consent text", validators=[DataRequired(), Length(max=2000)],
                         description="The checkbox label on forms. Changing it makes a new "
                                     "version; everyone's consent keeps the text they saw.")


@bp.route("/purposes", methods=["GET", "POST"])
@marketer_required
def purposes():
    form = PurposeForm()
    if form.validate_on_submit():
        try:
            purpose = consent.define(form.key.data, form.name.data, form.text.data)
        except consent.ConsentError as exc:
            form.key.errors = [str(exc)]
        else:
            db.session.commit()
            flash(f"Purpose “{purpose.name}” saved.", "info")
            return redirect(url_for("privacy.purposes"))
    return render_template("privacy/purposes.html", purposes=consent.purposes(), form=form,
                           editing=None), 400 if form.errors else 200


@bp.route("/purposes/<int:purpose_id>", methods=["GET", "POST"])
@marketer_required
def edit_purpose(purpose_id: int):
    purpose = db.session.get(ConsentPurpose, purpose_id) or abort(404)
    form = PurposeForm()
    if request.method == "GET":
        form.key.data, form.name.data = purpose.key, purpose.name
        form.text.data = purpose.current_text.text if purpose.current_text else ""
    form.key.data = purpose.key  # the key never changes
    if form.validate_on_submit():
        consent.define(purpose.key, form.name.data, form.text.data)
        db.session.commit()
        flash(f"Purpose “{purpose.name}” saved.", "info")
        return redirect(url_for("privacy.purposes"))
    return render_template("privacy/purposes.html", purposes=consent.purposes(), form=form,
                           editing=purpose), 400 if form.errors else 200


class EraseForm(FlaskForm):
    confirm = StringField("Type the person's email address to confirm",
                          validators=[DataRequired(message="Type the address to confirm.")])
    reason = TextAreaField("Why", validators=[DataRequired(message="Say why (kept in the audit "
                                                                   "log)."), Length(max=2000)],
                           description="Kept in the audit log. Write no personal data here: "
                                       "e.g. “asked by email, ticket 4711”.")


def _lead(lead_id: int) -> Lead:
    return db.session.get(Lead, lead_id) or abort(404)


@bp.route("/leads/<int:lead_id>/export")
@marketer_required
def export_lead(lead_id: int):
    """The access-request document for this lead, as a download."""
    lead = _lead(lead_id)
    body = json.dumps(export.export(lead), indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f"attachment; filename=person-{lead.id}.json",
        "Cache-Control": "no-store"})


@bp.route("/leads/<int:lead_id>/erase", methods=["GET", "POST"])
@admin_required
def erase_lead(lead_id: int):
    """GET asks for confirmation (the address typed again, and why); POST erases."""
    lead = _lead(lead_id)
    if lead.erased:
        flash("This lead was erased already.", "info")
        return redirect(url_for("leads.show", lead_id=lead.id))
    form = EraseForm()
    if form.validate_on_submit():
        if form.confirm.data.strip().lower() != lead.email:
            form.confirm.errors = ["That is not the address of this lead."]
        else:
            audit = erase.erase(lead.email, actor=f"user {current_user.id}",
                                reason=form.reason.data)
            flash(f"The person was erased (audit #{audit.id}). Their totals stay in the "
                  "reports; their address is suppressed from marketing email.", "info")
            return redirect(url_for("leads.index"))
    return render_template("privacy/erase.html", lead=lead, form=form), \
        400 if form.errors else 200


def lead_panel(lead: Lead) -> Markup:
    return Markup(render_template("privacy/_lead_panel.html", lead=lead,
                                  states=consent.states(lead.id),
                                  history=list(consent.history(lead.id))))

"""The outcome panel on the lead page: the lead's deals, and a form to record one by hand.

A panel of its own (`add_lead_panel`), so the lead page can change around it. The form posts
to `/admin/leads/<id>/outcomes`; a refusal renders the lead page again with the form's errors
and what was typed (400), a success redirects back to it.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from app.auth.roles import staff_required
from app.db import db
from app.leads.lifecycle import allowed_moves
from app.leads.models import Lead, Stage
from app.outcomes.service import OUTCOME_STAGES, OutcomeError, outcomes_of, record_outcome

bp = Blueprint("outcomes", __name__, url_prefix="/admin/leads")


class OutcomeForm(FlaskForm):
    stage = SelectField("Outcome", choices=[SelectChoice(s, Stage(s).label)
                                            for s in OUTCOME_STAGES])
    amount = StringField("Deal amount", validators=[Optional(), Length(max=20)],
                         description="Optional; at most two decimals, e.g. 12000 or 999.50.")
    currency = StringField("Currency", default="USD", validators=[Optional(), Length(max=3)],
                           description="ISO code, e.g. USD, EUR, GBP.")
    external_id = StringField("CRM deal id", validators=[Optional(), Length(max=200)],
                              description="Optional: the deal's id in your CRM.")
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2000)],
                           description="Required: why the lead moves (kept in its history).")


def lead_panel(lead: Lead) -> Markup:
    form = getattr(g, "outcome_form", None) or OutcomeForm(formdata=None)
    allowed = [s.value for s in allowed_moves(lead.stage)]
    return Markup(render_template("outcomes/_panel.html", lead=lead, form=form,
                                  outcomes=outcomes_of(lead), allowed=allowed,
                                  outcome_stages=OUTCOME_STAGES))


@bp.route("/<int:lead_id>/outcomes", methods=["POST"])
@staff_required
def record(lead_id: int):
    lead = db.session.get(Lead, lead_id) or abort(404)
    form = OutcomeForm()
    if form.validate_on_submit():
        try:
            outcome = record_outcome(lead, form.stage.data, form.amount.data,
                                     form.currency.data, form.external_id.data, actor="user",
                                     actor_user_id=current_user.id, reason=form.reason.data)
        except OutcomeError as exc:
            db.session.rollback()
            field = getattr(form, exc.field or "", None) or form.stage
            field.errors = [*field.errors, exc.message]
        else:
            db.session.commit()
            flash(f"Recorded: {Stage(outcome.stage).label}"
                  + (f", {outcome.amount_label}" if outcome.amount is not None else "") + ".",
                  "info")
            return redirect(url_for("leads.show", lead_id=lead.id) + "#outcome-h")
    lead = db.session.get(Lead, lead_id) or abort(404)
    g.outcome_form = form
    page = current_app.view_functions["leads.show"](lead_id=lead.id)
    return page, 400

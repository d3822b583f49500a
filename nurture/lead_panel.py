"""Nurture on the lead page: the lead's sequences (enroll, remove) and its subscription
(unsubscribe, resubscribe), each with who did it and the consent text or reason recorded.

A panel of its own (`add_lead_panel`) with its own routes, so the core lead page knows
nothing of sequences.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError
from wtforms import SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.auth.roles import marketer_required
from app.db import db
from app.leads.models import Lead
from app.leads.service import record_event
from nurture import engine
from nurture import enrollment as enrollments
from nurture.models import Enrollment, Sequence, SequenceStatus, Suppression, SuppressionReason
from nurture.unsubscribe import unsubscribe

bp = Blueprint("nurture_lead", __name__, url_prefix="/admin/leads")


class EnrollForm(FlaskForm):
    sequence_id = SelectField("Sequence", coerce=int)


class SubscriptionForm(FlaskForm):
    consent_text = TextAreaField(
        "Consent text or reason", validators=[DataRequired("Record what the lead agreed to or "
                                                           "asked for."), Length(max=2000)],
        description="Kept on the lead's timeline, e.g. “Asked by phone to stop emails” or the "
                    "exact consent wording they agreed to.")


def active_sequences() -> list[SelectChoice]:
    rows = db.session.execute(sa.select(Sequence.id, Sequence.name)
                              .where(Sequence.status == SequenceStatus.ACTIVE.value)
                              .order_by(Sequence.name)).all()
    return [SelectChoice(i, name) for i, name in rows]


def lead_panel(lead: Lead) -> Markup:
    if not current_user.has_role("marketer"):
        return Markup("")
    live = db.session.scalars(sa.select(Enrollment).where(
        Enrollment.lead_id == lead.id, Enrollment.status.in_(("active", "paused")))
        .order_by(Enrollment.id)).all()
    enroll = EnrollForm(formdata=None, prefix="enroll")
    enroll.sequence_id.choices = active_sequences()
    return Markup(render_template("nurture/_lead_panel.html", lead=lead, live=live,
                                  enroll=enroll,
                                  subscription=SubscriptionForm(formdata=None, prefix="sub")))


def _lead(lead_id: int) -> Lead:
    return db.session.get(Lead, lead_id) or abort(404)


def _back(lead: Lead):
    return redirect(url_for("leads.show", lead_id=lead.id, _anchor="nurture-h"))


@bp.route("/<int:lead_id>/enroll", methods=["POST"])
@marketer_required
def enroll(lead_id: int):
    lead = _lead(lead_id)
    form = EnrollForm(prefix="enroll")
    form.sequence_id.choices = active_sequences()
    if not form.validate_on_submit():
        flash("Not enrolled: choose an active sequence.", "error")
        return _back(lead)
    sequence = db.session.get(Sequence, form.sequence_id.data)
    why = enrollments.refusal(lead, sequence)
    if why:
        flash(f"Not enrolled: {why}.", "error")
        return _back(lead)
    try:
        made = enrollments.enroll(lead.id, form.sequence_id.data,
                                  f"added by {current_user.email}")
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        made = None
    if made is None:
        flash("Not enrolled: the lead is already in this sequence.", "error")
        return _back(lead)
    engine.kick([made.id])
    flash(f"Enrolled in “{made.sequence.name}”.", "info")
    return _back(lead)


@bp.route("/<int:lead_id>/enrollments/<int:enrollment_id>/remove", methods=["POST"])
@marketer_required
def remove(lead_id: int, enrollment_id: int):
    lead = _lead(lead_id)
    found = db.session.get(Enrollment, enrollment_id)
    if found is None or found.lead_id != lead.id:
        abort(404)
    if found.is_live:
        enrollments.end(found, f"removed by {current_user.email}", finished=False)
        db.session.commit()
        flash(f"Removed from “{found.sequence.name}”.", "info")
    return _back(lead)


@bp.route("/<int:lead_id>/subscription/<verb>", methods=["POST"])
@marketer_required
def subscription(lead_id: int, verb: str):
    lead = _lead(lead_id)
    if verb not in ("unsubscribe", "resubscribe"):
        abort(404)
    if lead.erased:
        flash("Nothing changed: this person was erased on request and gets no email again.",
              "error")
        return _back(lead)
    form = SubscriptionForm(prefix="sub")
    if not form.validate_on_submit():
        flash("Nothing changed: record the consent text or the reason.", "error")
        return _back(lead)
    text = form.consent_text.data.strip()
    if verb == "unsubscribe":
        if unsubscribe(lead, source=f"by {current_user.email}"):
            record_event(lead, "subscription_changed", data={
                "change": "unsubscribed", "by": current_user.email, "reason": text})
            flash("Unsubscribed: no more nurture email goes to this lead.", "info")
        else:
            flash("This lead was already unsubscribed.", "info")
        db.session.commit()
        return _back(lead)
    blocked = db.session.scalar(sa.select(Suppression).where(Suppression.email == lead.email))
    if lead.bounced_at is not None or (
            blocked is not None and blocked.reason != SuppressionReason.UNSUBSCRIBE.value):
        flash("Not resubscribed: this address bounced or reported spam; it stays suppressed.",
              "error")
        return _back(lead)
    if lead.unsubscribed_at is None and blocked is None:
        flash("This lead is subscribed already.", "info")
        return _back(lead)
    lead.unsubscribed_at = None
    if blocked is not None:
        db.session.delete(blocked)
    record_event(lead, "subscription_changed", data={
        "change": "resubscribed", "by": current_user.email, "reason": f"Consent: {text}"})
    db.session.commit()
    flash("Resubscribed, with the consent recorded.", "info")
    return _back(lead)


def bulk_enroll(ids: list[int], params: dict, user, _job) -> Any:
    """The leads list's bulk "Enroll in a sequence": each lead the rules allow; the others
    skipped with the reason. Enrollments start at the next tick."""
    from app.leads.bulk import Outcome

    sequence = db.session.get(Sequence, int(params["sequence_id"]))
    done, skipped = 0, []
    for lead in db.session.scalars(sa.select(Lead).where(Lead.id.in_(ids))):
        why = enrollments.refusal(lead, sequence)
        if why is None:
            with db.session.begin_nested():
                made = enrollments.enroll(lead.id, sequence.id if sequence else 0,
                                          f"bulk, by {user.email}")
            if made is not None:
                done += 1
                continue
            why = "the lead is already in this sequence"
        skipped.append(f"{lead.email_display}: {why}")
    return Outcome(done, skipped)

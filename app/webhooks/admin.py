"""Webhooks in the admin (admins): subscriptions, their secrets (shown, rotated), and the
delivery log with the attempts of each delivery and a replay button."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app import netguard
from app.auth.roles import admin_required
from app.db import db, utcnow
from app.webhooks import delivery as delivery_module
from app.webhooks.models import EVENT_TYPES, EndpointDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")
ROTATION_OVERLAP = timedelta(hours=24)
LOG_SIZE = 100


class EndpointForm(FlaskForm):
    url = StringField("Endpoint URL", validators=[DataRequired(), Length(max=500)],
                      description="https://… — where Kindling POSTs each event.")
    description = StringField("Description", validators=[Length(max=200)])
    event_types = SelectMultipleField(
        "Events", choices=[SelectChoice(t, t) for t in EVENT_TYPES], validators=[DataRequired()],
        option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))
    active = BooleanField("Active", default=True)

    def validate_url(self, field: StringField) -> None:
        try:
            netguard.check_url((field.data or "").strip())
        except netguard.BlockedURL as exc:
            raise ValidationError(str(exc)) from None


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    return db.session.get(WebhookEndpoint, endpoint_id) or abort(404)


@bp.route("/", methods=["GET", "POST"])
@admin_required
def index():
    form = EndpointForm()
    if form.validate_on_submit():
        endpoint = WebhookEndpoint(url=(form.url.data or "").strip(),
                                   description=(form.description.data or "").strip(),
                                   event_types=list(form.event_types.data or []),
                                   active=bool(form.active.data), secret=new_secret())
        db.session.add(endpoint)
        db.session.commit()
        flash("Subscription saved. Its signing secret is on its page.", "info")
        return redirect(url_for("webhooks.show", endpoint_id=endpoint.id))
    endpoints = db.session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()
    status = 400 if request.method == "POST" else 200
    return render_template("webhooks/index.html", form=form, endpoints=endpoints), status


@bp.route("/<int:endpoint_id>", methods=["GET", "POST"])
@admin_required
def show(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    form = EndpointForm(obj=endpoint if request.method == "GET" else None)
    if form.validate_on_submit():
        endpoint.url = (form.url.data or "").strip()
        endpoint.description = (form.description.data or "").strip()
        endpoint.event_types = list(form.event_types.data or [])
        endpoint.active = bool(form.active.data)
        db.session.commit()
        flash("Subscription saved.", "info")
        return redirect(url_for("webhooks.show", endpoint_id=endpoint.id))
    deliveries = db.session.scalars(
        sa.select(EndpointDelivery).where(EndpointDelivery.endpoint_id == endpoint.id)
        .order_by(EndpointDelivery.id.desc()).limit(LOG_SIZE)).all()
    status = 400 if request.method == "POST" else 200
    return render_template("webhooks/show.html", endpoint=endpoint, form=form,
                           deliveries=deliveries, now=utcnow()), status


@bp.route("/<int:endpoint_id>/rotate", methods=["POST"])
@admin_required
def rotate(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = utcnow() + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    db.session.commit()
    flash("New secret made. For 24 hours every message is signed with both the new and the "
          "old secret, so the receiver can switch without losing one.", "info")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id))


@bp.route("/<int:endpoint_id>/delete", methods=["POST"])
@admin_required
def delete(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    db.session.delete(endpoint)
    db.session.commit()
    flash("Subscription deleted, with its delivery log.", "info")
    return redirect(url_for("webhooks.index"))


@bp.route("/deliveries/<int:delivery_id>/replay", methods=["POST"])
@admin_required
def replay(delivery_id: int):
    delivery = db.session.get(EndpointDelivery, delivery_id) or abort(404)
    if not delivery_module.replay(delivery):
        flash(f"Delivery {delivery.id} is being sent right now: replay it once this try has "
              "ended (its status shows it).", "error")
        return redirect(url_for("webhooks.show", endpoint_id=delivery.endpoint_id))
    db.session.commit()
    flash(f"Delivery {delivery.id} queued to be sent again (same webhook-id).", "info")
    return redirect(url_for("webhooks.show", endpoint_id=delivery.endpoint_id))

"""The sales settings screen (admins): assignment, SLA, reps, territories."""

from __future__ import annotations

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from wtforms import SelectChoice

from app.auth.models import Role, User
from app.auth.roles import admin_required
from app.db import db
from app.sales.forms import RepForm, SettingsForm, TerritoryForm
from app.sales.models import SalesRep, SalesSettings, Territory
from app.sales.web import bp

FIELDS = ("assignment_mode", "team_email", "manager_email", "sla_hours", "timezone",
          "work_start_hour", "work_end_hour", "allow_non_owner", "team_slack_url")


def _sales_choices() -> list[SelectChoice]:
    users = db.session.scalars(sa.select(User).where(User.role == Role.SALES.value)
                               .order_by(User.email)).all()
    return [SelectChoice(str(u.id), u.email) for u in users]


@bp.route("/settings", methods=["GET", "POST"])
@admin_required
def settings():
    row = SalesSettings.load()
    form = SettingsForm(prefix="s", obj=row if request.method == "GET" else None)
    rep_form, territory_form = RepForm(prefix="rep"), TerritoryForm(prefix="t")
    rep_form.user_id.choices = territory_form.user_id.choices = _sales_choices()
    action = request.form.get("action")
    if action == "settings" and form.validate_on_submit():
        for name in FIELDS:
            value = getattr(form, name).data
            setattr(row, name, value.strip() if isinstance(value, str) else
                    ("" if value is None else value))
        db.session.add(row)
        db.session.commit()
        flash("Sales settings saved.", "info")
        return redirect(url_for("sales.settings"))
    if action == "rep" and rep_form.validate_on_submit():
        rep = db.session.scalar(sa.select(SalesRep)
                                .where(SalesRep.user_id == rep_form.user_id.data))
        rep = rep or SalesRep(user_id=rep_form.user_id.data)
        rep.weight, rep.is_manager = rep_form.weight.data, rep_form.is_manager.data
        rep.working_days = sorted(set(rep_form.working_days.data or []))
        rep.slack_url = (rep_form.slack_url.data or "").strip()
        db.session.add(rep)
        db.session.commit()
        flash("Rotation updated.", "info")
        return redirect(url_for("sales.settings"))
    if action == "territory" and territory_form.validate_on_submit():
        country = territory_form.country.data.upper()
        rule = db.session.scalar(sa.select(Territory).where(Territory.country == country))
        rule = rule or Territory(country=country)
        rule.user_id = territory_form.user_id.data
        db.session.add(rule)
        db.session.commit()
        flash(f"Territory {country} saved.", "info")
        return redirect(url_for("sales.settings"))
    if action == "delete_territory":  # CSRFProtect has checked the token of every POST
        rule = db.session.get(Territory, request.form.get("territory_id", type=int) or 0)
        if rule is not None:
            db.session.delete(rule)
            db.session.commit()
        return redirect(url_for("sales.settings"))
    reps = db.session.scalars(sa.select(SalesRep).order_by(SalesRep.id)).all()
    territories = db.session.scalars(sa.select(Territory).order_by(Territory.country)).all()
    status = 400 if request.method == "POST" else 200
    return render_template("sales/settings.html", form=form, rep_form=rep_form,
                           territory_form=territory_form, reps=reps, territories=territories,
                           ), status

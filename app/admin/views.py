from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, redirect, render_template, url_for

from app.auth.roles import staff_required
from app.db import db, utcnow
from app.leads.models import Event, Lead, Stage

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@staff_required
def dashboard():
    by_stage = dict(db.session.execute(
        sa.select(Lead.stage, sa.func.count()).group_by(Lead.stage)
    ).all())
    since = utcnow() - timedelta(days=7)
    new_leads = db.session.scalar(sa.select(sa.func.count()).where(Lead.created_at >= since))
    recent = db.session.scalars(
        sa.select(Event).where(Event.lead_id.is_not(None), Event.is_bot.is_(False))
        .order_by(Event.occurred_at.desc()).limit(15)
    ).all()
    return render_template("admin/dashboard.html", stages=list(Stage), by_stage=by_stage,
                           new_leads=new_leads, recent=recent)


def init_root(app) -> None:
    @app.route("/")
    def index():
        return redirect(url_for("admin.dashboard"))

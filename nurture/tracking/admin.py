"""The marketer's Tracking page: human vs machine opens and clicks (with reasons), the
spam-report rate, and the sending pause."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from app.auth.roles import marketer_required
from app.db import db, utcnow
from app.leads.models import Event
from app.templating import plural
from nurture.tracking import health

bp = Blueprint("tracking_admin", __name__, url_prefix="/admin/tracking",
               template_folder="templates")

TYPES = ("email_opened", "email_clicked")


def _recent(since) -> list[Event]:
    """The newest 50 opens and clicks: the week's, found by the time index, or when the week
    has none the last ones written (ids follow time: a backward walk of the primary key, not
    a sort of the whole log)."""
    opens = sa.select(Event).where(Event.type.in_(TYPES)).limit(50)
    week = db.session.scalars(opens.where(Event.occurred_at >= since)
                              .order_by(Event.occurred_at.desc(), Event.id.desc())).all()
    if week:
        return list(week)
    last = db.session.scalars(opens.order_by(Event.id.desc())).all()
    return sorted(last, key=lambda e: (e.occurred_at, e.id), reverse=True)


@bp.route("/")
@marketer_required
def index():
    since = utcnow() - timedelta(days=7)
    totals = {(t, bot): n for t, bot, n in db.session.execute(
        sa.select(Event.type, Event.is_bot, sa.func.count())
        .where(Event.type.in_(TYPES), Event.occurred_at >= since)
        .group_by(Event.type, Event.is_bot))}
    reasons = db.session.execute(
        sa.select(Event.type, Event.bot_reason, sa.func.count().label("n"))
        .where(Event.type.in_(TYPES), Event.occurred_at >= since, Event.is_bot.is_(True))
        .group_by(Event.type, Event.bot_reason).order_by(sa.desc("n"))
    ).all()
    recent = _recent(since)
    state = health.status()
    if state.level == "warning":
        flash(f"Spam reports are at {state.rate:.2%} of delivered email in the last 24 hours "
              f"({state.spam} of {state.delivered}). Above 0.1 % mailbox providers start to "
              "filter your email; sending pauses above "
              f"{float(current_app.config['TRACKING_SPAM_PAUSE_RATE']):.1%}.", "warning")
    return render_template("tracking/admin.html", totals=totals, reasons=reasons,
                           recent=recent, state=state, types=TYPES)


@bp.route("/resume", methods=["POST"])
@marketer_required
def resume():
    pause = health.sending_paused()
    if pause is None:
        abort(404)
    resumed = health.lift(pause, current_user.email)
    db.session.commit()
    flash(f"Sending resumed; {plural(resumed, 'sequence')} active again.",
          "success")
    return redirect(url_for(".index"))

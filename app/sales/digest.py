"""The daily digest: each active sales user gets their qualified leads as a CSV attachment.

Periodic (hourly); sent once per user and local day after SALES_DIGEST_HOUR, through the same
alert ledger as the handoff alerts (key `digest:<date>:<email>`), so it is never sent twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, render_template

from app import mail, outbox
from app.auth.models import Role, User
from app.db import db, utcnow
from app.jobs import job
from app.leads.models import Lead
from app.mail import Attachment
from app.sales import alerts
from app.sales.export import DEFAULT_STAGES, Filters, lines
from app.sales.models import Alert, SalesSettings
from app.sales.worktime import local


def run_digest(now=None) -> int:
    """Create today's digest alerts that are due; returns how many. Commits."""
    settings = SalesSettings.load()
    today = local(now or utcnow(), settings)
    if today.hour < int(current_app.config["SALES_DIGEST_HOUR"]):
        return 0
    made = 0
    users = db.session.scalars(sa.select(User).where(User.active.is_(True),
                                                     User.role == Role.SALES.value)).all()
    for user in users:
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Lead).where(
            Lead.owner_id == user.id, Lead.stage.in_(DEFAULT_STAGES)))
        if not count:
            continue
        day = today.date().isoformat()
        alert = alerts.create("digest", user.email, user_id=user.id,
                              key=f"digest:{day}:{user.email}", data={"day": day})
        made += alert is not None
    db.session.commit()
    outbox.dispatch_committed()
    return made


def digest_email(alert: Alert) -> mail.Email:
    day = alert.data.get("day", "")
    filters = Filters(owner=alert.recipient)
    rows = list(lines(filters, bom=True))  # one user's leads: small enough to attach
    csv_text, count = "".join(rows), len(rows) - 1
    context = {"day": day, "count": count, "base_url": current_app.config["BASE_URL"]}
    return mail.new_email(
        to=alert.recipient, subject=f"Your qualified leads, {day}",
        html=render_template("sales/mail/digest.html", **context),
        text=render_template("sales/mail/digest.txt", **context),
        attachments=[Attachment(f"qualified-leads-{day}.csv", csv_text.encode("utf-8"),
                                "text/csv")],
        categories=["sales-digest"], custom_args={"sales_alert_id": str(alert.id)})


@job
def send_digests() -> int:
    """Periodic entry point."""
    return run_digest()

"""Mail jobs of the core."""

from __future__ import annotations

from flask import current_app, render_template

from app import mail
from app.auth.models import User
from app.db import db
from app.leads.service import normalise_email
from app.mail.ledger import unique_key


def send_test_email(user_id: int, to: str, key: str | None = None) -> str | None:
    """Send the 'is mail working?' message an operator asks for from the admin or CLI, once
    per `key` (`test:<random>`, chosen when it was asked for). Its message id when sent now."""
    user = db.session.get(User, user_id)
    _, address = normalise_email(to)

    def build() -> mail.Email:
        context = {"user": user, "backend": mail.backend().name,
                   "base_url": current_app.config["BASE_URL"]}
        return mail.new_email(
            to=address,
            subject="Kindling test email",
            html=render_template("mail/test_email.html", **context),
            text=render_template("mail/test_email.txt", **context),
            to_name=user.name if user else "",
            categories=["test"],
        )

    outcome = mail.deliver(key or unique_key("test"), build)
    return outcome.message_id if outcome.status == "sent" else None

"""Jobs of users and sign-in."""

from __future__ import annotations

from flask import current_app, render_template

from app import mail
from app.auth.models import User
from app.db import db


def send_password_reset(user_id: int, key: str) -> None:
    """Email the user a link to choose a new password, once per `key` (the ledger row)."""
    from app.auth.reset import make_token

    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return

    def build() -> mail.Email:
        base = current_app.config["BASE_URL"]
        context = {"user": user, "link": f"{base}/password-reset/{make_token(user)}",
                   "minutes": int(current_app.config["PASSWORD_RESET_MAX_AGE"]) // 60,
                   "base_url": base}
        return mail.new_email(
            to=user.email, subject="Choose a new Kindling password",
            html=render_template("auth/mail/reset.html", **context),
            text=render_template("auth/mail/reset.txt", **context),
            to_name=user.name, categories=["password-reset"])

    mail.deliver(key, build)

"""Mail jobs of the core."""

from __future__ import annotations

from flask import current_app, render_template

from app import mail
from app.auth.models import User
from app.db import db
from app.leads.service import normalise_email


def send_test_email(user_id: int, to: str) -> str:
    """Send the 'is mail working?' message an operator asks for from the admin or CLI."""
    user = db.session.get(User, user_id)
    _, address = normalise_email(to)
    context = {"user": user, "backend": mail.backend().name, "base_url": current_app.config["BASE_URL"]}
    email = mail.new_email(
        to=address,
        subject="Kindling test email",
        html=render_template("mail/test_email.html", **context),
        text=render_template("mail/test_email.txt", **context),
        to_name=user.name if user else "",
        categories=["test"],
    )
    return mail.backend().send(email)

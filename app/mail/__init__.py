"""Mail backends behind one interface: `send(Email) -> provider message id`.

SendGrid when `SENDGRID_API_KEY` is set, otherwise the local outbox under `<instance>/outbox/`.
Code that sends an email calls `deliver` (the ledger row first; see `app.mail.delivery`),
never the backend directly.
"""

from __future__ import annotations

import os
from typing import Protocol

from flask import Flask, current_app

from app.mail.delivery import Delivery, Refusal, deliver, refusal, refused, transmit, transmit_all
from app.mail.errors import MailError
from app.mail.message import Attachment, Email


class MailBackend(Protocol):
    name: str

    def send(self, email: Email) -> str: ...

    def check(self) -> str: ...


def build_backend(app: Flask) -> MailBackend:
    key = app.config.get("SENDGRID_API_KEY")
    if key:
        from app.mail.sendgrid_backend import SendGridBackend

        return SendGridBackend(key, host=app.config.get("SENDGRID_API_HOST"),
                               timeout=float(app.config.get("SENDGRID_TIMEOUT", 10)))
    from app.mail.local_outbox import LocalOutbox

    return LocalOutbox(os.path.join(app.config["INSTANCE_PATH"], "outbox"))


def init_app(app: Flask) -> None:
    from app.mail.ledger import seed_demo
    from app.seed import add_seeder

    app.extensions["mail"] = build_backend(app)
    add_seeder(app, seed_demo)


def backend() -> MailBackend:
    return current_app.extensions["mail"]


def new_email(to: str, subject: str, html: str, text: str, **kwargs) -> Email:
    """An Email from the configured sender."""
    kwargs.setdefault("sender", current_app.config["MAIL_FROM"])
    return Email(to=to, subject=subject, html=html, text=text, **kwargs)


__all__ = ["Attachment", "Delivery", "Email", "MailBackend", "MailError", "Refusal", "backend",
           "deliver", "new_email", "refusal", "refused", "transmit", "transmit_all"]

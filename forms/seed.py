"""Demo data: "Demo guide form", which the demo landing page (/p/demo) and the embed demo use."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from app.db import db
from app.privacy.consent import by_key
from forms import consents
from forms.models import FieldType, Form, FormField

DEMO_FORM_NAME = "Demo guide form"
DEMO_EMBED_ORIGIN = "http://127.0.0.1:8765"
DEMO_FIELDS = [
    ("email", "Work email", FieldType.EMAIL, True),
    ("first_name", "First name", FieldType.TEXT, True),
    ("company", "Company", FieldType.TEXT, False),
    ("job_title", "Job title", FieldType.TEXT, False),
    ("country", "Country", FieldType.COUNTRY, False),
]


def demo_form() -> Form | None:
    return db.session.scalar(sa.select(Form).where(Form.name == DEMO_FORM_NAME))


def seed_forms() -> list[str]:
    """Create the demo form once; running it again finds it."""
    form = demo_form()
    if form is None:
        form = Form(
            name=DEMO_FORM_NAME, submit_label="Send me the guide",
            consent_enabled=True, consent_required=True, consent_version="2026-11",
            # The guide itself; product news and events are asked for as purposes of their own.
            consent_text="Yes, email me the guide and a few emails about it. "
                         "I can unsubscribe at any time.",
            success_message="Thank you! The guide is on its way to your inbox.",
            allowed_origins=[DEMO_EMBED_ORIGIN],
            fields=[FormField(name=name, label=label, type=kind.value, required=required,
                              max_length=320 if kind is FieldType.EMAIL else 200,
                              position=position)
                    for position, (name, label, kind, required) in enumerate(DEMO_FIELDS)],
        )
        db.session.add(form)
        db.session.flush()
        # Consent per purpose (app.privacy's demo purposes): product news and events, optional.
        purposes = [p for p in (by_key("product_news"), by_key("events")) if p is not None]
        consents.configure(form, {p.id: "ask" for p in purposes})
        db.session.commit()
    base = current_app.config["BASE_URL"]
    return [f"Form “{form.name}”: {base}/admin/forms/{form.id}",
            (f"  embed: <script src=\"{base}/f/{form.key}/embed.js\" async></script>"
            f"<div data-kindling-form=\"{form.key}\"></div> (allowed on {DEMO_EMBED_ORIGIN})")]

"""Demo data: three consent purposes, so forms and sequences have something to ask for."""

from __future__ import annotations

from app.privacy import consent

DEMO_PURPOSES = [
    ("product_news", "Product news",
     "Yes, email me about new features and product updates (at most twice a month)."),
    ("events", "Events and webinars", "Yes, invite me to webinars and events."),
    ("partners", "Partner offers", "Yes, tell me about offers from carefully chosen partners."),
]


def seed_privacy() -> list[str]:
    made = []
    for key, name, text in DEMO_PURPOSES:
        if consent.by_key(key) is None:
            consent.define(key, name, text)
            made.append(name)
    from app.db import db

    db.session.commit()
    return [f"Consent purposes: {', '.join(made)} (/admin/privacy/purposes)"] if made else []

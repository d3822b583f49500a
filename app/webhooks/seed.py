"""Demo: a webhook subscription to look at in the admin (its target is a documentation
address that is never called while the demo endpoint stays disabled)."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import db
from app.webhooks.models import WebhookEndpoint
from app.webhooks.signing import new_secret

DEMO_URL = "https://crm.example.com/hooks/kindling"


def seed_webhooks() -> list[str]:
    from flask import current_app

    base = current_app.config["BASE_URL"]
    api = ("REST API: make a token with `flask --app wsgi api-token create "
           f"marketer@example.com --scope write --name Demo`, then see {base}/api/v1/docs/")
    lines = [f"Webhooks: {base}/admin/webhooks/ (a disabled demo subscription)", api]
    if db.session.scalar(sa.select(WebhookEndpoint.id).where(WebhookEndpoint.url == DEMO_URL)):
        return lines
    db.session.add(WebhookEndpoint(url=DEMO_URL, description="Demo CRM (disabled)",
                                   event_types=["lead.created", "lead.stage_changed"],
                                   secret=new_secret(), active=False))
    db.session.commit()
    return lines

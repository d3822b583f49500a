"""Today's single CRM URL becomes a lead.stage_changed subscription (migration 0021b)."""

from __future__ import annotations

import base64

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app.db import db
from app.webhooks.models import WebhookEndpoint


def test_the_crm_url_becomes_a_subscription_signed_with_its_old_secret(app):
    downgrade(revision="0016a_session_version")
    db.session.execute(sa.text(
        "INSERT INTO sales_settings (id, assignment_mode, team_email, manager_email, sla_hours,"
        " timezone, work_start_hour, work_end_hour, allow_non_owner, crm_webhook_url,"
        " crm_webhook_secret, updated_at) VALUES (1, 'round_robin', '', '', 8, 'UTC', 9, 17,"
        " false, 'https://crm.example.com/hook', 'old-shared-secret-123', '2026-01-01')"))
    db.session.commit()
    upgrade()
    endpoint = db.session.scalar(sa.select(WebhookEndpoint))
    assert endpoint is not None and endpoint.url == "https://crm.example.com/hook"
    assert endpoint.event_types == ["lead.stage_changed"] and endpoint.active
    assert base64.b64decode(endpoint.secret[len("whsec_"):]) == b"old-shared-secret-123"

"""CRM webhook: every stage change POSTed, signed with HMAC-SHA256, retried, logged."""

import hashlib
import hmac

import pytest
import sqlalchemy as sa

from app import outbox
from app.db import db
from app.outbox import OutboxJob
from app.sales import crm
from app.sales.jobs import on_stage_change
from app.sales.models import WebhookDelivery
from app.worker import run_worker
from tests.app.sales.helpers import make_lead, make_mql, settings

SECRET = "a-long-shared-secret-for-tests"


@pytest.fixture
def app_config(app_config):
    """The fake CRM listens on loopback, which app.netguard refuses unless the operator allows it."""
    return {**app_config, "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8"}


def test_a_stage_change_is_delivered_signed(app, fake_crm):
    settings(crm_webhook_url=fake_crm.url, crm_webhook_secret=SECRET)
    lead = make_lead()
    lead.fit_score, lead.engagement_score = 80, 55.0
    change_id, lead_id = make_mql(lead).id, lead.id
    run_worker(burst=True)  # listener → CRM outbox row → delivery

    (received,) = fake_crm.received
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-Kindling-Signature"] == expected
    doc = received.json
    assert doc["lead"] == {"id": lead_id, "email": "dana@acme.example.com", "fit_score": 80,
                           "engagement_score": 55.0, "owner": None}
    assert doc["stage"] == {"from": "lead", "to": "mql"}
    assert (doc["reason"], doc["actor"]) == ("Score 80 ≥ 70", "scoring")
    assert doc["id"] == f"stage_change:{change_id}" and doc["timestamp"]
    (log,) = db.session.scalars(sa.select(WebhookDelivery)).all()
    assert (log.status_code, log.ok, log.attempt) == (200, True, 1)


def test_a_failed_delivery_is_retried_and_logged(app, fake_crm, client, auth):
    settings(crm_webhook_url=fake_crm.url, crm_webhook_secret=SECRET)
    fake_crm.answer(500)
    change = make_mql(make_lead())
    on_stage_change(change.id)
    row = db.session.scalar(sa.select(OutboxJob).where(OutboxJob.job == "app.sales.crm.deliver"))
    with pytest.raises(crm.DeliveryFailed):
        outbox.run(row.id)  # 500: raised, so RQ retries it with back-off
    assert outbox.run(row.id) == "delivered"
    assert outbox.run(row.id) is None  # done: a redelivery sends nothing
    assert crm.deliver(change.id) == "done"
    assert len(fake_crm.received) == 2
    assert fake_crm.received[0].body == fake_crm.received[1].body
    logs = db.session.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    assert [(d.attempt, d.status_code, d.ok) for d in logs] == [(1, 500, False), (2, 200, True)]
    assert "HTTP 500" in logs[0].error

    auth.login_as("admin")
    page = client.get("/sales/settings").get_data(as_text=True)
    assert "CRM webhook deliveries" in page and "HTTP 500" in page


def test_nothing_is_sent_without_a_url(app, fake_crm):
    change = make_mql(make_lead())
    on_stage_change(change.id)
    assert db.session.scalar(sa.select(OutboxJob).where(
        OutboxJob.job == "app.sales.crm.deliver")) is None
    assert crm.deliver(change.id) == "skipped"


def test_an_unreachable_crm_is_logged(app):
    settings(crm_webhook_url="http://127.0.0.1:1/hook", crm_webhook_secret=SECRET)
    change = make_mql(make_lead())
    with pytest.raises(crm.DeliveryFailed):
        crm.deliver(change.id)
    (log,) = db.session.scalars(sa.select(WebhookDelivery)).all()
    assert log.status_code is None and "refused" in log.error.lower()

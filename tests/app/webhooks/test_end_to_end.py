"""End to end, with a real RQ worker: a lead made through the API reaches a loopback receiver
as a signed `lead.created`; a stage change through the API as `lead.stage_changed`; a receiver
that answers 500 three times gets the event on the fourth try (the sweep re-enqueues each due
retry). The receiver is on loopback, allowed by OUTBOUND_ALLOWED_NETWORKS in this package's
test config."""

from __future__ import annotations

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from app.db import db
from app.webhooks import delivery
from app.webhooks.models import EndpointDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret
from app.worker import run_worker
from tests.app.api.conftest import ApiClient, token_for


def test_api_to_signed_webhooks_with_retries(app, client, receiver):
    endpoint = WebhookEndpoint(url=receiver.url, description="receiver", active=True,
                               event_types=["lead.created", "lead.stage_changed"],
                               secret=new_secret())
    db.session.add(endpoint)
    db.session.commit()
    secret = endpoint.secret
    api = ApiClient(client, token_for())

    made = api.post("/api/v1/leads", {"email": "dana@acme.example.com", "company": "Acme",
                                      "attributes": {"utm_source": "partner"}})
    assert made.status_code == 201
    run_worker(burst=True)
    [created] = receiver.of_type("lead.created")
    payload = Webhook(secret).verify(created.body, created.headers)
    assert payload["data"]["lead"]["email"] == "dana@acme.example.com"

    receiver.answer(500, 500, 500)
    lead_id = made.get_json()["id"]
    moved = api.post(f"/api/v1/leads/{lead_id}/stage", {"stage": "sql", "reason": "Call booked"})
    assert moved.status_code == 200
    run_worker(burst=True)  # the stage listener, then the first try: 500
    for _ in range(3):  # three retries, each enqueued by the sweep when due
        db.session.expire_all()
        assert delivery.sweep() == 1
        run_worker(burst=True)
    tries = receiver.of_type("lead.stage_changed")
    assert len(tries) == 4 and len({t.headers["webhook-id"] for t in tries}) == 1
    data = Webhook(secret).verify(tries[-1].body, tries[-1].headers)["data"]
    assert data["stage_change"]["to_stage"] == "sql"
    db.session.expire_all()
    statuses = db.session.scalars(sa.select(EndpointDelivery.status)).all()
    assert statuses == ["delivered", "delivered"]

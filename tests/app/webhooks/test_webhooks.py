"""Outgoing webhooks: signed deliveries, retries, replay, rotation, SSRF refusals, the bridge."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app import outbox
from app.db import db
from app.leads.service import change_stage, record_event, upsert_lead
from app.outbox import OutboxJob
from app.webhooks import delivery, listeners
from app.webhooks.models import DeliveryAttempt, EndpointDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret
from tests.app.api.conftest import ApiClient, token_for
from tests.fakes.dns import fake_getaddrinfo
from tests.helpers import csrf_from


def subscribe(url: str, *types: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=url, description="test", event_types=list(types),
                               secret=new_secret(), active=True)
    db.session.add(endpoint)
    db.session.commit()
    return endpoint


def run_outbox() -> None:
    """Run every outbox row not done yet, in order, as the worker would (jobs they add too)."""
    for _ in range(10):
        rows = db.session.scalars(sa.select(OutboxJob.id).where(
            OutboxJob.done_at.is_(None), OutboxJob.failed_at.is_(None)).order_by(OutboxJob.id)
        ).all()
        if not rows:
            return
        for row_id in rows:
            outbox.run(row_id)


def verify(endpoint: WebhookEndpoint, received) -> dict:
    return Webhook(endpoint.secret).verify(received.body, received.headers)


def test_api_created_lead_reaches_the_receiver_signed_with_its_history(app, client, receiver):
    endpoint = subscribe(receiver.url, "lead.created", "lead.stage_changed")
    api = ApiClient(client, token_for())
    made = api.post("/api/v1/leads", {"email": "ann@example.com", "company": "Acme"})
    assert made.status_code == 201
    run_outbox()
    [got] = receiver.of_type("lead.created")
    payload = verify(endpoint, got)
    assert got.headers["webhook-id"].startswith("msg_")
    data = payload["data"]
    assert data["lead"]["email"] == "ann@example.com" and data["lead"]["company"] == "Acme"
    assert data["scores"]["fit"] == 0 and "why" in data["scores"]
    assert data["stage_history"][0]["to_stage"] == "lead"
    assert data["source"]["created_by"] == "api"
    lead_id = made.get_json()["id"]
    moved = api.post(f"/api/v1/leads/{lead_id}/stage", {"stage": "sql", "reason": "Demo booked"})
    assert moved.status_code == 200
    run_outbox()
    [stage] = receiver.of_type("lead.stage_changed")
    data = verify(endpoint, stage)["data"]
    assert data["stage_change"]["to_stage"] == "sql"
    assert data["stage_change"]["reason"] == "Demo booked"
    assert [c["to_stage"] for c in data["stage_history"]] == ["lead", "sql"]


def test_a_forged_or_other_secret_signature_does_not_verify(app, client, receiver):
    endpoint = subscribe(receiver.url, "lead.created")
    ApiClient(client, token_for()).post("/api/v1/leads", {"email": "ann@example.com"})
    run_outbox()
    [got] = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        verify(endpoint, type(got)(got.headers, got.body.replace("ann", "bob")))


def test_receiver_failing_three_times_gets_it_on_the_fourth_try(app, receiver):
    subscribe(receiver.url, "lead.stage_changed")
    receiver.answer(500, 500, 500)
    lead = upsert_lead("ann@example.com").lead
    change_stage(lead, "mql", reason="Scored 80")
    db.session.commit()
    run_outbox()  # the listener, then the first try
    row = db.session.scalar(sa.select(EndpointDelivery))
    assert row is not None and row.status == "retrying" and row.attempts == 1
    for _ in range(3):
        delivery.deliver(row.id)
    db.session.refresh(row)
    assert row.status == "delivered" and row.attempts == 4
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(receiver.received) == 4 and len(ids) == 1  # one message id on every try
    codes = db.session.scalars(sa.select(DeliveryAttempt.status_code)
                               .order_by(DeliveryAttempt.id)).all()
    assert codes == [500, 500, 500, 200]


def test_after_the_last_retry_it_fails_and_replay_sends_it_again(app, receiver):
    app.config["WEBHOOK_RETRY_SCHEDULE"] = (0,)
    endpoint = subscribe(receiver.url, "lead.stage_changed")
    receiver.answer(503, 503)
    lead = upsert_lead("ann@example.com").lead
    change_stage(lead, "mql", reason="Scored 80")
    db.session.commit()
    run_outbox()
    row = db.session.scalar(sa.select(EndpointDelivery))
    assert row is not None
    assert delivery.deliver(row.id) == "failed"
    assert delivery.deliver(row.id) == "skipped"  # a failed delivery is not tried by itself
    delivery.replay(row)
    db.session.commit()
    run_outbox()
    db.session.refresh(row)
    assert row.status == "delivered"
    assert verify(endpoint, receiver.received[-1])["type"] == "lead.stage_changed"


def test_a_replay_while_the_delivery_is_being_sent_waits_for_that_try(app, client, auth,
                                                                        receiver):
    """A replay cleared the claim of a try still in flight, so a second worker could send the
    same delivery at the same moment. While a try holds the claim, the admin is told to
    replay once it ends, and nothing changes; after it, the replay goes as before."""
    from app.db import utcnow

    endpoint = subscribe(receiver.url, "lead.stage_changed")
    lead = upsert_lead("ann@example.com").lead
    change_stage(lead, "mql", reason="Scored 80")
    db.session.commit()
    run_outbox()
    row = db.session.scalar(sa.select(EndpointDelivery))
    row.status, row.claimed_at = "retrying", utcnow()  # a worker is sending it (again) now
    db.session.commit()
    queued = db.session.scalar(sa.select(sa.func.count()).select_from(OutboxJob))
    auth.login_as("admin")
    page = client.get(f"/admin/webhooks/{endpoint.id}").get_data(as_text=True)
    answer = client.post(f"/admin/webhooks/deliveries/{row.id}/replay",
                         data={"csrf_token": csrf_from(page)}, follow_redirects=True)
    assert "being sent right now" in answer.get_data(as_text=True)
    db.session.refresh(row)
    assert row.claimed_at is not None and row.status == "retrying"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxJob)) == queued


def test_rotation_signs_with_both_secrets_for_a_day(app, client, auth, receiver):
    endpoint = subscribe(receiver.url, "lead.created")
    old = endpoint.secret
    auth.login_as("admin")
    page = client.get(f"/admin/webhooks/{endpoint.id}").get_data(as_text=True)
    assert old in page
    client.post(f"/admin/webhooks/{endpoint.id}/rotate", data={"csrf_token": csrf_from(page)})
    db.session.refresh(endpoint)
    assert endpoint.secret != old and endpoint.previous_secret == old
    upsert_lead("ann@example.com")
    listeners.lead_written(upsert_lead("bob@example.com").lead, created=True, changes={})
    db.session.commit()
    run_outbox()
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(got.body, got.headers)
    assert Webhook(endpoint.secret).verify(got.body, got.headers)


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/", "http://169.254.169.254/"])
def test_admin_refuses_loopback_and_link_local_targets(make_app, app_config, url):
    config = dict(app_config, OUTBOUND_ALLOWED_NETWORKS="")
    strict = make_app(config)
    with strict.app_context():
        from tests.helpers import AuthActions

        client = strict.test_client()
        AuthActions(client).login_as("admin")
        page = client.get("/admin/webhooks/").get_data(as_text=True)
        answer = client.post("/admin/webhooks/", data={
            "url": url, "event_types": ["lead.created"], "active": "y",
            "csrf_token": csrf_from(page)})
        assert answer.status_code == 400
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


def test_a_name_that_moves_to_loopback_after_saving_is_refused_at_delivery(
        make_app, app_config, monkeypatch, receiver):
    config = dict(app_config, OUTBOUND_ALLOWED_NETWORKS="")
    strict = make_app(config)
    real = socket.getaddrinfo
    with strict.app_context():
        from tests.helpers import AuthActions

        client = strict.test_client()
        AuthActions(client).login_as("admin")
        monkeypatch.setattr(socket, "getaddrinfo",
                            fake_getaddrinfo({"hooks.example.com": ["93.184.216.34"]}, real))
        page = client.get("/admin/webhooks/").get_data(as_text=True)
        port = receiver.url.split(":")[2].split("/")[0]
        saved = client.post("/admin/webhooks/", data={
            "url": f"http://hooks.example.com:{port}/hooks", "event_types": ["lead.created"],
            "active": "y", "csrf_token": csrf_from(page)})
        assert saved.status_code == 302
        monkeypatch.setattr(socket, "getaddrinfo",
                            fake_getaddrinfo({"hooks.example.com": ["127.0.0.1"]}, real))
        listeners.lead_written(upsert_lead("ann@example.com").lead, created=True, changes={})
        db.session.commit()
        run_outbox()
        row = db.session.scalar(sa.select(EndpointDelivery))
        assert row is not None and row.status == "retrying"
        assert "Refused" in (row.last_error or "")
        assert receiver.received == []


def test_bridge_tells_form_submissions_new_leads_and_human_clicks(app, receiver):
    endpoint = subscribe(receiver.url, "lead.created", "form.submitted", "email.clicked")
    listeners.bridge()  # the first run only marks where the log is
    lead = upsert_lead("ann@example.com", source="form").lead
    record_event(lead, "form_submitted", data={"form": "Demo", "new_lead": True,
                                               "utm": {"utm_source": "ads"}})
    record_event(lead, "email_clicked", url="https://example.com/a", is_bot=True,
                 bot_reason="scanner")
    record_event(lead, "email_clicked", url="https://example.com/b")
    db.session.commit()
    assert listeners.bridge() == 3
    assert listeners.bridge() == 0  # re-reading the same rows tells nothing twice
    run_outbox()
    kinds = sorted(r.json()["type"] for r in receiver.received)
    assert kinds == ["email.clicked", "form.submitted", "lead.created"]
    [click] = receiver.of_type("email.clicked")
    data = verify(endpoint, click)["data"]
    assert data["event"]["url"] == "https://example.com/b"
    assert data["source"]["utm"] == {"utm_source": "ads"}
    assert data["last_activity"]["type"] == "email_clicked"


def test_nothing_is_recorded_without_a_subscriber(app):
    lead = upsert_lead("ann@example.com").lead
    change_stage(lead, "mql", reason="x")
    db.session.commit()
    run_outbox()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EndpointDelivery)) == 0


def test_a_hanging_receiver_costs_one_timeout_not_one_per_delivery(app, receiver):
    """A receiver that takes the connection and never answers holds the worker for the
    timeout. Once it has, the other deliveries to it wait (untried) for a minute instead of
    each holding the worker as long again, while other endpoints are served as usual."""
    import time
    from datetime import timedelta

    from app.db import utcnow

    app.config["WEBHOOK_TIMEOUT"] = 1
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)  # the kernel accepts; nobody ever reads or answers
    try:
        dead = subscribe(f"http://127.0.0.1:{hanging.getsockname()[1]}/hooks", "lead.created")
        subscribe(receiver.url, "lead.created")
        for n in range(5):
            listeners.lead_written(upsert_lead(f"p{n}@example.com").lead, created=True,
                                   changes={})
        db.session.commit()
        started = time.monotonic()
        run_outbox()
        elapsed = time.monotonic() - started
    finally:
        hanging.close()
    assert elapsed < 3, f"{elapsed:.1f} s: each delivery waited for the dead receiver"
    assert len(receiver.of_type("lead.created")) == 5
    db.session.expire_all()
    waiting = db.session.scalars(sa.select(EndpointDelivery)
                                 .where(EndpointDelivery.endpoint_id == dead.id)).all()
    assert sorted(d.attempts for d in waiting) == [0, 0, 0, 0, 1]
    assert all(d.status == "retrying" for d in waiting)
    rested = [d for d in waiting if d.attempts == 0]
    assert all(d.next_attempt_at > utcnow() + timedelta(seconds=30) for d in rested)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DeliveryAttempt)
                             .join(EndpointDelivery)
                             .where(EndpointDelivery.endpoint_id == dead.id)) == 1

"""POST /webhooks/crm: Standard Webhooks signatures, freshness, replays, and what the CRM tells."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from app.db import db
from app.leads.lifecycle import move
from app.leads.models import Lead, Stage, StageChange
from app.leads.service import upsert_lead
from app.outcomes.models import CrmWebhookMessage, Outcome

SECRET = "whsec_" + base64.b64encode(b"kindling-crm-test-secret-32bytes").decode()


@pytest.fixture
def app_config(app_config):
    return {**app_config, "CRM_WEBHOOK_SECRET": SECRET}


def signed(body: dict | bytes, *, msg_id: str = "msg_1", at: float | None = None,
           secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    when = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    signature = Webhook(secret).sign(msg_id, when, raw.decode())
    return raw, {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
                 "webhook-signature": signature, "Content-Type": "application/json"}


def sql_lead(email: str = "buyer@acme.example.com") -> Lead:
    lead = upsert_lead(email, {"company": "Acme"}).lead
    move(lead, Stage.SQL, reason="accepted", actor="user")
    db.session.commit()
    return lead


def post(client, body, **kw):
    raw, headers = signed(body, **kw)
    return client.post("/webhooks/crm", data=raw, headers=headers)


def state() -> tuple[int, int, int]:
    return (db.session.scalar(sa.select(sa.func.count(Outcome.id))),
            db.session.scalar(sa.select(sa.func.count(StageChange.id))),
            db.session.scalar(sa.select(sa.func.count(CrmWebhookMessage.id))))


def test_a_signed_customer_outcome_moves_the_lead_and_keeps_the_deal(client, app):
    lead = sql_lead()
    response = post(client, {"email": "Buyer@acme.example.com", "stage": "customer",
                             "amount": "12000.50", "currency": "eur", "external_id": "D-17"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["stage"] == "customer"
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "customer"
    change = db.session.scalars(sa.select(StageChange).where(StageChange.lead_id == lead.id)
                                .order_by(StageChange.id.desc())).first()
    assert (change.from_stage, change.to_stage, change.actor) == ("sql", "customer", "crm")
    assert "D-17" in change.reason
    outcome = db.session.scalar(sa.select(Outcome))
    assert (outcome.amount, outcome.currency, outcome.external_id, outcome.stage_change_id) == (
        Decimal("12000.50"), "EUR", "D-17", change.id)


def test_lead_id_works_as_well_as_email(client, app):
    lead = sql_lead()
    assert post(client, {"lead_id": lead.id, "stage": "opportunity"}).status_code == 200
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "opportunity"


@pytest.mark.parametrize("tamper, status, kind", [
    ("signature", 401, "bad-signature"),
    ("wrong-secret", 401, "bad-signature"),
    ("malformed", 401, "bad-signature"),
    ("missing", 401, "signature-missing"),
    ("old", 401, "stale-timestamp"),
    ("future", 401, "stale-timestamp"),
])
def test_unauthentic_or_stale_messages_are_refused_and_change_nothing(client, app, caplog,
                                                                       tamper, status, kind):
    lead = sql_lead()
    before = state()
    body = {"email": lead.email, "stage": "customer", "amount": 10, "currency": "USD"}
    raw, headers = signed(body, at=time.time() - 301 if tamper == "old" else
                          time.time() + 400 if tamper == "future" else None,
                          secret="whsec_" + base64.b64encode(b"another-secret-entirely").decode()
                          if tamper == "wrong-secret" else SECRET)
    if tamper == "signature":
        raw = raw.replace(b"customer", b"lost\x20\x20\x20\x20")  # same length, other body
    if tamper == "malformed":
        headers["webhook-signature"] = "v1-not-a-signature"
    if tamper == "missing":
        del headers["webhook-signature"]
    with caplog.at_level(logging.WARNING, logger="app.outcomes.webhook"):
        response = client.post("/webhooks/crm", data=raw, headers=headers)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == f"urn:kindling:problem:{kind}"
    assert response.json["status"] == status and response.json["title"]
    assert state() == before
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "sql"
    assert any("crm webhook refused" in r.getMessage() and kind in r.getMessage()
               for r in caplog.records)


def test_a_replayed_message_is_refused_even_with_a_fresh_signature(client, app, caplog):
    lead = sql_lead()
    assert post(client, {"email": lead.email, "stage": "opportunity"}, msg_id="m-1").status_code == 200
    before = state()
    with caplog.at_level(logging.WARNING, logger="app.outcomes.webhook"):
        again = post(client, {"email": lead.email, "stage": "customer"}, msg_id="m-1")
    assert again.status_code == 409
    assert again.json["type"] == "urn:kindling:problem:replay"
    assert state() == before
    assert any("replay" in r.getMessage() for r in caplog.records)
    # The id is kept in the database, not in memory: another app (process) refuses it too.
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "opportunity"


@pytest.mark.parametrize("body, status, kind", [
    ({"email": "nobody@nowhere.example.com", "stage": "customer"}, 404, "unknown-lead"),
    ({"lead_id": 999999, "stage": "customer"}, 404, "unknown-lead"),
    ({"stage": "customer"}, 422, "lead-missing"),
    ({"email": "buyer@acme.example.com", "stage": "won"}, 422, "unknown-stage"),
    ({"email": "buyer@acme.example.com", "stage": "mql"}, 422, "unknown-stage"),
    ({"email": "buyer@acme.example.com", "stage": "customer", "amount": "-5",
      "currency": "USD"}, 422, "bad-amount"),
    ({"email": "buyer@acme.example.com", "stage": "customer", "amount": 5}, 422, "bad-currency"),
    ({"email": "buyer@acme.example.com", "stage": "customer", "amount": 5,
      "currency": "XXQ"}, 422, "bad-currency"),
    (b"not json", 400, "bad-json"),
    ([1, 2], 422, "bad-body"),
])
def test_bad_messages_are_refused_with_a_problem_body_and_change_nothing(client, app, body,
                                                                          status, kind):
    sql_lead()
    before = state()
    response = post(client, body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["type"] == f"urn:kindling:problem:{kind}"
    assert state() == before
    # A refused message may come again once fixed: its id was not used up.
    assert db.session.scalar(sa.select(CrmWebhookMessage.id)) is None


def test_a_move_the_lifecycle_forbids_is_refused_with_what_is_allowed(client, app):
    lead = upsert_lead("new@acme.example.com").lead  # stage lead: not handed to sales yet
    db.session.commit()
    response = post(client, {"email": lead.email, "stage": "customer"})
    assert response.status_code == 422
    assert "cannot move from Lead to Customer" in response.json["detail"]
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "lead"


def test_without_a_secret_configured_the_endpoint_refuses_everything(client, app):
    app.config["CRM_WEBHOOK_SECRET"] = None
    lead = sql_lead()
    response = post(client, {"email": lead.email, "stage": "customer"})
    assert response.status_code == 503
    assert response.json["type"] == "urn:kindling:problem:crm-webhook-not-configured"


def test_a_second_deal_of_a_customer_is_kept_without_a_second_move(client, app):
    lead = sql_lead()
    assert post(client, {"email": lead.email, "stage": "customer", "amount": 100,
                         "currency": "USD", "external_id": "D-1"}, msg_id="a").status_code == 200
    changes = db.session.scalar(sa.select(sa.func.count(StageChange.id)))
    assert post(client, {"email": lead.email, "stage": "customer", "amount": 40,
                         "currency": "USD", "external_id": "D-2"}, msg_id="b").status_code == 200
    assert db.session.scalar(sa.select(sa.func.count(StageChange.id))) == changes
    amounts = db.session.scalars(sa.select(Outcome.amount).order_by(Outcome.id)).all()
    assert amounts == [Decimal("100.00"), Decimal("40.00")]


def test_a_body_over_the_limit_is_refused(client, app):
    app.config["CRM_WEBHOOK_MAX_BYTES"] = 100
    lead = sql_lead()
    response = post(client, {"email": lead.email, "stage": "customer", "reason": "x" * 500})
    assert response.status_code == 413
    assert response.json["type"] == "urn:kindling:problem:too-large"


def test_a_lost_deal_reopened_and_won_is_recorded(client, app):
    """The CRM says the deal was lost, then (reopened, or the rep fixed the stage) won. The
    won message was refused for good (422: "cannot move from Lost to Customer"), the CRM
    retried it until it gave up, and the customer and the revenue never reached the reports."""
    lead = sql_lead()
    assert post(client, {"email": lead.email, "stage": "lost", "external_id": "D-9"},
                msg_id="lost").status_code == 200
    won = post(client, {"email": lead.email, "stage": "customer", "amount": 900,
                        "currency": "USD", "external_id": "D-9"}, msg_id="won")
    assert won.status_code == 200, won.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "customer"
    assert db.session.scalars(sa.select(Outcome.stage).order_by(Outcome.id)).all() == [
        "lost", "customer"]

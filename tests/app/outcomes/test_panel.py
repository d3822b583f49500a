"""Recording an outcome by hand, in the outcome panel of the lead page."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from app.db import db
from app.leads.lifecycle import move
from app.leads.models import Lead, Stage, StageChange
from app.leads.service import upsert_lead
from app.outcomes.models import Outcome
from tests.helpers import csrf_from


def _sql_lead() -> Lead:
    lead = upsert_lead("deal@acme.example.com").lead
    move(lead, Stage.SQL, reason="accepted", actor="user")
    db.session.commit()
    return lead


def test_sales_records_a_won_deal_on_the_lead_page(client, auth, app):
    auth.login_as("sales")
    lead = _sql_lead()
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "Record an outcome" in page and 'id="outcome-h"' in page
    response = client.post(f"/admin/leads/{lead.id}/outcomes", data={
        "csrf_token": csrf_from(page), "stage": "customer", "amount": "4,500.00",
        "currency": "gbp", "external_id": "OPP-9", "reason": "Signed the annual plan"})
    assert response.status_code == 302
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "4,500.00 GBP" in shown and "OPP-9" in shown and "Signed the annual plan" in shown
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "customer"
    change = db.session.scalars(sa.select(StageChange).order_by(StageChange.id.desc())).first()
    assert change.actor == "user" and change.actor_user.email == "sales@example.com"
    assert change.reason == "Signed the annual plan"
    outcome = db.session.scalar(sa.select(Outcome))
    assert outcome.amount == Decimal("4500.00") and outcome.actor_user_id == change.actor_user_id


def test_a_refused_outcome_keeps_what_was_typed_and_says_why(client, auth, app):
    auth.login_as("marketer")
    lead = upsert_lead("early@acme.example.com").lead  # still a lead: cannot be a customer
    db.session.commit()
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    response = client.post(f"/admin/leads/{lead.id}/outcomes", data={
        "csrf_token": csrf_from(page), "stage": "customer", "amount": "12.345",
        "currency": "USD", "external_id": "X-1", "reason": "Closed"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "more than two decimals" in html and 'value="X-1"' in html
    assert "Nothing was recorded" in html
    response = client.post(f"/admin/leads/{lead.id}/outcomes", data={
        "csrf_token": csrf_from(page), "stage": "customer", "amount": "12",
        "currency": "USD", "reason": "Closed"})
    assert response.status_code == 400
    assert "cannot move from Lead to Customer" in response.get_data(as_text=True)
    response = client.post(f"/admin/leads/{lead.id}/outcomes", data={
        "csrf_token": csrf_from(page), "stage": "lost", "reason": ""})
    assert response.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count(Outcome.id))) == 0
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "lead"


def test_the_outcome_form_needs_a_signed_in_staff_user_and_a_csrf_token(client, auth, app):
    lead = _sql_lead()
    assert client.post(f"/admin/leads/{lead.id}/outcomes", data={"stage": "lost"}).status_code \
        == 400  # no CSRF token, no session
    auth.login_as("sales")
    assert client.post(f"/admin/leads/{lead.id}/outcomes",
                       data={"stage": "lost", "reason": "x"}).status_code == 400
    assert db.session.scalar(sa.select(sa.func.count(Outcome.id))) == 0


def test_a_decimal_comma_is_refused_not_read_as_thousands(client, auth, app):
    """"999,50" (a decimal comma) was read as 99,950: a deal a hundred times its size in the
    revenue. Commas are thousands separators only where they group three digits."""
    auth.login_as("sales")
    lead = _sql_lead()
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    response = client.post(f"/admin/leads/{lead.id}/outcomes", data={
        "csrf_token": csrf_from(page), "stage": "customer", "amount": "999,50",
        "currency": "EUR", "reason": "Signed"})
    assert response.status_code == 400
    assert "999,50" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Outcome.id))) == 0
    response = client.post(f"/admin/leads/{lead.id}/outcomes", data={
        "csrf_token": csrf_from(page), "stage": "customer", "amount": "1,234,567.50",
        "currency": "EUR", "reason": "Signed"})
    assert response.status_code == 302
    assert db.session.scalar(sa.select(Outcome.amount)) == Decimal("1234567.50")

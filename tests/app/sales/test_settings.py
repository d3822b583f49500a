"""The sales settings screen: admins only; saves settings, rotation and territories."""

import sqlalchemy as sa

from app.db import db
from app.sales.models import SalesRep, SalesSettings, Territory
from tests.helpers import csrf_from, make_user


def test_only_admins(app, client, auth):
    auth.login_as("sales")
    assert client.get("/sales/settings").status_code == 403


def test_save_settings_rotation_and_territory(app, client, auth):
    sam = make_user("sam@example.com", "sales")
    auth.login_as("admin")
    page = client.get("/sales/settings").get_data(as_text=True)
    token = csrf_from(page)
    response = client.post("/sales/settings", data={
        "action": "settings", "s-csrf_token": token, "s-assignment_mode": "territory",
        "s-team_email": "team@example.com", "s-manager_email": "boss@example.com",
        "s-sla_hours": "6", "s-timezone": "Europe/Berlin", "s-work_start_hour": "8",
        "s-work_end_hour": "16", "s-allow_non_owner": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    row = db.session.get(SalesSettings, 1)
    assert (row.assignment_mode, row.sla_hours, row.timezone, row.allow_non_owner) == (
        "territory", 6, "Europe/Berlin", True)
    page = client.get("/sales/settings").get_data(as_text=True)
    assert "/admin/webhooks/" in page  # the CRM is a webhook subscription now

    assert client.post("/sales/settings", data={
        "action": "rep", "rep-csrf_token": token, "rep-user_id": str(sam.id),
        "rep-weight": "3", "rep-working_days": ["0", "2"], "rep-is_manager": "y"},
    ).status_code == 302
    rep = db.session.scalar(sa.select(SalesRep))
    assert (rep.weight, rep.working_days, rep.is_manager) == (3, [0, 2], True)

    assert client.post("/sales/settings", data={
        "action": "territory", "t-csrf_token": token, "t-country": "de",
        "t-user_id": str(sam.id)}).status_code == 302
    assert db.session.scalar(sa.select(Territory)).country == "DE"


def test_bad_values_are_refused(app, client, auth):
    auth.login_as("admin")
    token = csrf_from(client.get("/sales/settings").get_data(as_text=True))
    response = client.post("/sales/settings", data={
        "action": "settings", "s-csrf_token": token, "s-assignment_mode": "round_robin",
        "s-sla_hours": "8", "s-timezone": "Mars/Olympus", "s-work_start_hour": "9",
        "s-work_end_hour": "17"})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Unknown time zone" in text
    assert db.session.get(SalesSettings, 1) is None

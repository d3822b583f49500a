"""Sales' own view: "My leads" (accepted, last activity, next task), the SLA clock in the
queue, and the queue readable by marketers (without the answer links)."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from app.db import db, utcnow
from app.leads.work import add_task
from app.sales.models import Assignment
from tests.app.sales.helpers import handed_off
from tests.helpers import csrf_from


def test_an_accepted_lead_is_in_my_leads_with_its_next_task(app, client, auth):
    lead, _alert = handed_off(email="ann@acme.example.com", first_name="Annlead")
    auth.login("sam@example.com")
    assert "Annlead" not in client.get("/sales/my-leads").get_data(as_text=True)
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    client.post(f"/sales/leads/{lead.id}/accept", data={"csrf_token": csrf_from(page)})
    add_task(lead.id, "Book the demo", utcnow() + timedelta(days=1), lead.owner_id, None)
    add_task(lead.id, "Later thing", utcnow() + timedelta(days=5), lead.owner_id, None)
    db.session.commit()
    mine = client.get("/sales/my-leads").get_data(as_text=True)
    assert "Annlead" in mine and "Book the demo" in mine and "Later thing" not in mine


def test_the_queue_shows_the_sla_clock(app, client, auth):
    handed_off(email="ann@acme.example.com", first_name="Annlead")
    start = db.session.query(Assignment).one().created_at
    auth.login("sam@example.com")
    with time_machine.travel(start, tick=False):
        fresh = client.get("/sales/queue").get_data(as_text=True)
    assert "0.0 h of 8 h" in fresh and "badge-late" not in fresh
    with time_machine.travel(start + timedelta(days=7), tick=False):
        late = client.get("/sales/queue").get_data(as_text=True)
    assert "h over the 8 h SLA" in late and "badge-late" in late


def test_marketers_read_the_whole_queue_without_answer_links(app, client, auth):
    handed_off(email="ann@acme.example.com", first_name="Annlead")
    auth.login_as("marketer")
    page = client.get("/sales/queue").get_data(as_text=True)
    assert "Annlead" in page and ">Accept<" not in page and "for sales" in page
    assert "Sales queue" in client.get("/admin/").get_data(as_text=True)
    assert client.get("/sales/my-leads").status_code == 403

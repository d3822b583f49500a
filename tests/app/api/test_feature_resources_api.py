"""Enrollments (enroll, list, remove), submissions and campaigns (read), report numbers."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import db
from forms.pipeline import Context, accept
from nurture.models import Enrollment
from tests.app.api.conftest import ApiClient
from tests.campaigns.helpers import make_form, make_page
from tests.nurture.factories import email_step, make_lead, make_sequence


def test_enroll_list_and_remove(api: ApiClient, read_api: ApiClient):
    lead = make_lead()
    sequence = make_sequence(email_step())
    made = api.post("/api/v1/enrollments", {"lead_id": lead.id, "sequence_id": sequence.id})
    assert made.status_code == 201, made.get_json()
    enrollment = made.get_json()
    assert enrollment["status"] == "active" and enrollment["source"].startswith("API")
    again = api.post("/api/v1/enrollments", {"lead_id": lead.id, "sequence_id": sequence.id})
    assert again.status_code == 422 and "already" in again.get_json()["detail"]
    assert again.get_json()["errors"][0]["field"] == "sequence_id"
    listed = read_api.get(f"/api/v1/enrollments?lead_id={lead.id}").get_json()
    assert [e["id"] for e in listed["data"]] == [enrollment["id"]]
    assert read_api.delete(f"/api/v1/enrollments/{enrollment['id']}").status_code == 403
    removed = api.delete(f"/api/v1/enrollments/{enrollment['id']}")
    assert removed.status_code == 200 and removed.get_json()["status"] == "exited"
    assert db.session.get(Enrollment, enrollment["id"]).ended_at is not None
    missing = api.post("/api/v1/enrollments", {"lead_id": lead.id, "sequence_id": 999})
    assert missing.get_json()["errors"][0]["field"] == "sequence_id"


def test_submissions_and_campaigns_read(api: ApiClient):
    form = make_form()
    page = make_page(form=form)
    accept(form, {"email": "ann@example.com"}, {"email": "ann@example.com"},
           Context(campaign_id=page.campaign_id, channel="hosted"))
    db.session.commit()
    subs = api.get(f"/api/v1/submissions?form_id={form.id}").get_json()["data"]
    assert len(subs) == 1 and subs[0]["email"] == "ann@example.com"
    assert subs[0]["form"] == form.name and subs[0]["campaign_id"] == page.campaign_id
    one = api.get(f"/api/v1/submissions/{subs[0]['id']}").get_json()
    assert one["id"] == subs[0]["id"]
    assert api.get("/api/v1/submissions/999999").status_code == 404
    campaigns = api.get("/api/v1/campaigns").get_json()["data"]
    assert [c["slug"] for c in campaigns] == ["guide"]
    assert campaigns[0]["pages"][0]["url"].endswith("/p/guide")
    assert api.post("/api/v1/campaigns", {"name": "x"}).status_code == 405


def test_report_numbers(api: ApiClient):
    from app.reports import rollup

    make_lead()
    rollup.refresh()
    db.session.commit()
    body = api.get("/api/v1/reports/numbers").get_json()
    assert body["metrics"]["leads"] == 1
    bad = api.get("/api/v1/reports/numbers?since=2026-02-01&until=2026-01-01").get_json()
    assert bad["errors"][0]["field"] == "since"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Enrollment)) == 0

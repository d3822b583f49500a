"""Access requests: the export holds everything, in the documented format, and reads back."""

from __future__ import annotations

import json

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from app.privacy.models import Erasure
from tests.app.privacy.support import ADDRESS, person_with_everything


def _read_back(text: str) -> dict:
    """What a reader of docs/privacy-export.md does: check the format, then the sections."""
    document = json.loads(text)
    assert (document["format"], document["version"]) == ("kindling.person-export", 1)
    assert set(document) == {"format", "version", "exported_at", "lead_id", "profile",
                             "sections"}
    return document


def test_the_cli_exports_everything_about_the_person(app, runner):
    person_with_everything()
    result = runner.invoke(args=["privacy", "export", ADDRESS.upper()])
    assert result.exit_code == 0, result.output
    document = _read_back(result.output)
    assert document["profile"]["email"] == ADDRESS
    assert document["profile"]["first_name"] == "Annabel"
    sections = document["sections"]
    (granted,) = sections["consents"]
    assert (granted["purpose"], granted["text"], granted["text_version"], granted["source"],
            granted["ip"]) == ("product_news", "Email me product news.", 1, "form",
                               "203.0.113.77")
    (submission,) = sections["submissions"]
    assert submission["raw"]["note"] == f"raw {ADDRESS}" and submission["ip"] == "203.0.113.77"
    (send,) = sections["sends"]
    assert send["subject"] == "Hello {{ lead.first_name }}" and send["sent_at"]
    types = {e["type"] for e in sections["events"]}
    assert {"form_submitted", "page_viewed", "nurture_enrolled", "email_sent"} <= types
    assert [c["to_stage"] for c in sections["stage_history"]] == ["lead", "mql"]
    assert sections["alerts"][0]["data"]["name"] == "Annabel"
    assert sections["outcomes"][0]["reason"] == f"Deal with {ADDRESS}"
    assert {"crm_webhook_deliveries", "webhook_messages", "notes", "tracking_visitors"} \
        <= set(sections)


def test_an_unknown_address_exits_1(app, runner):
    result = runner.invoke(args=["privacy", "export", "nobody@example.com"])
    assert result.exit_code == 1 and "No lead has the address" in result.output


def test_the_lead_page_offers_the_export_and_an_admin_the_erasure(app, client, auth):
    lead = person_with_everything()
    auth.login_as("admin")
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "Download their data (JSON)" in page and "Erase this person" in page
    download = client.get(f"/admin/privacy/leads/{lead.id}/export")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert _read_back(download.get_data(as_text=True))["lead_id"] == lead.id

    confirm = client.get(f"/admin/privacy/leads/{lead.id}/erase")
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "cannot be undone" in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Erasure)) == 0  # GET only
    token = auth.csrf(f"/admin/privacy/leads/{lead.id}/erase")
    wrong = client.post(f"/admin/privacy/leads/{lead.id}/erase", data={
        "csrf_token": token, "confirm": "someone@example.com", "reason": "asked"})
    assert wrong.status_code == 400 and "not the address of this lead" in wrong.get_data(as_text=True)
    done = client.post(f"/admin/privacy/leads/{lead.id}/erase", data={
        "csrf_token": token, "confirm": ADDRESS, "reason": "asked by email"},
        follow_redirects=True)
    assert "The person was erased" in done.get_data(as_text=True)
    db.session.remove()
    assert db.session.get(Lead, lead.id).email == f"erased-{lead.id}"
    (audit,) = db.session.scalars(sa.select(Erasure))
    assert audit.actor.startswith("user ") and audit.reason == "asked by email"


def test_a_marketer_cannot_erase(app, client, auth):
    lead = person_with_everything()
    auth.login_as("marketer")
    assert "Erase this person" not in client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert client.get(f"/admin/privacy/leads/{lead.id}/erase").status_code == 403

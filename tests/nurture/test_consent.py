"""Sequences that need a consent purpose: no enrollment without it, withdrawal ends the journey,
the unsubscribe page withdraws per purpose, imports record their basis."""

from __future__ import annotations

import io

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead
from app.privacy import consent
from nurture.enrollment import enroll, refusal
from nurture.models import Enrollment
from nurture.unsubscribe import make_token
from tests.helpers import csrf_from
from tests.nurture.factories import make_lead, make_sequence


def _news():
    purpose = consent.define("product_news", "Product news", "Email me product news.")
    db.session.commit()
    return purpose


def test_a_lead_without_the_purpose_is_never_enrolled(app):
    news = _news()
    sequence = make_sequence(required_purpose_id=news.id)
    lead = make_lead()
    assert refusal(lead, sequence) == "the lead has not agreed to “Product news”"
    assert enroll(lead.id, sequence.id, "test") is None
    consent.grant(lead, news, source="form")
    assert enroll(lead.id, sequence.id, "test") is not None


def test_withdrawing_the_purpose_ends_the_journeys_that_need_it(app):
    news = _news()
    needs = make_sequence(name="News", required_purpose_id=news.id)
    other = make_sequence(name="Onboarding")
    lead = make_lead()
    consent.grant(lead, news, source="form")
    enroll(lead.id, needs.id, "test")
    enroll(lead.id, other.id, "test")
    db.session.commit()
    consent.withdraw(lead, news, source="unsubscribe")
    db.session.commit()
    rows = {e.sequence.name: (e.status, e.exit_reason)
            for e in db.session.scalars(sa.select(Enrollment))}
    assert rows == {"News": ("exited", "withdrew consent to “Product news”"),
                    "Onboarding": ("active", None)}


def test_the_unsubscribe_page_withdraws_one_purpose(app, client):
    news = _news()
    events = consent.define("events", "Events", "Invite me.")
    lead = make_lead()
    consent.grant(lead, news, source="form")
    consent.grant(lead, events, source="form")
    db.session.commit()
    token = make_token(lead.id)
    page = client.get(f"/u/{token}").get_data(as_text=True)
    assert 'name="purpose"' in page and "Product news" in page and "Events" in page
    done = client.post(f"/u/{token}", data={"scope": "purposes", "purpose": str(news.id)})
    assert done.status_code == 200
    assert "no more emails about: “Product news”" in done.get_data(as_text=True)
    db.session.expire_all()
    assert consent.granted_purpose_ids(lead.id) == {events.id}
    assert db.session.get(Lead, lead.id).unsubscribed_at is None  # other email still goes
    last = list(consent.history(lead.id))[-1]
    assert (last.granted, last.source) == (False, "unsubscribe")


def test_unsubscribing_from_everything_withdraws_every_purpose(app, client):
    news = _news()
    lead = make_lead()
    consent.grant(lead, news, source="form")
    db.session.commit()
    client.post(f"/u/{make_token(lead.id)}", data={"scope": "all"})
    db.session.expire_all()
    assert consent.granted_purpose_ids(lead.id) == set()


def test_an_import_records_its_basis_and_consent_to_the_sequence_purpose(app, client, auth):
    auth.login_as("marketer")
    news = _news()
    sequence = make_sequence(required_purpose_id=news.id)
    page = client.get(f"/admin/nurture/{sequence.id}/enrollments").get_data(as_text=True)
    assert "Why may we email these people?" in page
    body = b"email,first_name\nnina@example.com,Nina\n"
    response = client.post(f"/admin/nurture/{sequence.id}/enrollments/import", data={
        "csrf_token": csrf_from(page), "file": (io.BytesIO(body), "leads.csv"),
        "basis": "consent"}, content_type="multipart/form-data", follow_redirects=True)
    assert "1 lead enrolled" in response.get_data(as_text=True)
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == "nina@example.com"))
    (row,) = consent.history(lead.id)
    assert (row.source, row.granted, row.text.version) == ("import", True, 1)
    assert row.detail.startswith("basis: consent")
    imported = db.session.scalar(sa.select(Event).where(Event.type == "lead_imported"))
    assert imported.data["basis"] == "consent"


def test_an_import_on_legitimate_interest_does_not_invent_consent(app, client, auth):
    auth.login_as("marketer")
    news = _news()
    sequence = make_sequence(required_purpose_id=news.id)
    page = client.get(f"/admin/nurture/{sequence.id}/enrollments").get_data(as_text=True)
    body = b"email\nnina@example.com\n"
    response = client.post(f"/admin/nurture/{sequence.id}/enrollments/import", data={
        "csrf_token": csrf_from(page), "file": (io.BytesIO(body), "leads.csv"),
        "basis": "legitimate_interest"}, content_type="multipart/form-data",
        follow_redirects=True)
    assert "has not agreed to “Product news”" in response.get_data(as_text=True)


def test_a_purpose_required_later_ends_the_journeys_of_leads_without_it(app, client, auth):
    """A marketer makes a running sequence need "Product news": the leads in it who never
    agreed get no further email from it (their journey ends, saying why); those who did stay."""
    from tests.nurture.factories import sends, work

    news = _news()
    sequence = make_sequence(name="News")
    agreed, never = make_lead("yes@example.com"), make_lead("no@example.com")
    consent.grant(agreed, news, source="form")
    for lead in (agreed, never):
        enroll(lead.id, sequence.id, "test")
    db.session.commit()
    auth.login_as("marketer")
    token = csrf_from(client.get(f"/admin/nurture/{sequence.id}").get_data(as_text=True))
    response = client.post(f"/admin/nurture/{sequence.id}", data={
        "csrf_token": token, "name": "News", "window_days": [str(d) for d in range(7)],
        "window_start_hour": "0", "window_end_hour": "24",
        "timezone": "UTC", "frequency_cap_hours": "0", "reenroll": "never",
        "on_permanent_failure": "continue", "trigger_form_id": "0",
        "required_purpose_id": str(news.id)}, follow_redirects=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "1 lead who had not agreed to the purpose left the sequence" in response.get_data(as_text=True)
    work()
    assert [s.lead_id for s in sends()] == [agreed.id]
    rows = {e.lead_id: (e.status, e.exit_reason)
            for e in db.session.scalars(sa.select(Enrollment))}
    assert rows[never.id] == ("exited", "has not agreed to “Product news”")

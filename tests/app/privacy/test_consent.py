"""Consent per purpose: versioned texts, the ledger, the purposes page and the lead panel."""

from __future__ import annotations

from app.db import db
from app.leads.service import upsert_lead
from app.privacy import consent


def test_a_changed_text_is_a_new_version_and_grants_keep_the_text_they_saw(app):
    lead = upsert_lead("ann@example.com").lead
    news = consent.define("product_news", "Product news", "Email me product news.")
    consent.grant(lead, news, source="form", ip="203.0.113.9")
    consent.define("product_news", "Product news", "Email me product news, monthly.")
    consent.grant(lead, news, source="api")
    db.session.commit()

    assert [t.version for t in news.texts] == [1, 2]
    first, second = consent.history(lead.id)
    assert (first.text.text, first.text.version, first.ip) == ("Email me product news.", 1,
                                                               "203.0.113.9")
    assert (second.text.text, second.source) == ("Email me product news, monthly.", "api")
    # The same text again is not a new version.
    consent.define("product_news", "Product news", "Email me product news, monthly.")
    assert len(news.texts) == 2


def test_withdrawal_is_a_ledger_row_and_ends_consent(app):
    lead = upsert_lead("ann@example.com").lead
    news = consent.define("product_news", "Product news", "News, please.")
    events = consent.define("events", "Events", "Invite me.")
    consent.grant(lead, news, source="form")
    consent.grant(lead, events, source="form")
    assert consent.withdraw(lead, news, source="unsubscribe", ip="198.51.100.1") is not None
    assert consent.withdraw(lead, news, source="unsubscribe") is None  # nothing left to withdraw
    db.session.commit()

    assert not consent.has_consent(lead.id, news.id)
    assert consent.has_consent(lead.id, events.id)
    rows = list(consent.history(lead.id))
    assert [(r.purpose.key, r.granted, r.source) for r in rows] == [
        ("product_news", True, "form"), ("events", True, "form"),
        ("product_news", False, "unsubscribe")]
    assert consent.withdraw_all(lead, source="unsubscribe") == 1
    assert consent.granted_purpose_ids(lead.id) == set()


def test_a_bad_key_is_refused_with_a_reason(app):
    try:
        consent.define("Product News!", "x", "y")
    except consent.ConsentError as exc:
        assert "lower-case" in str(exc)
    else:
        raise AssertionError("accepted a bad key")


def test_marketer_adds_and_edits_a_purpose(app, client, auth):
    auth.login_as("marketer")
    page = client.get("/admin/privacy/purposes")
    assert page.status_code == 200 and "No purposes yet" in page.get_data(as_text=True)
    token = auth.csrf("/admin/privacy/purposes")
    response = client.post("/admin/privacy/purposes", data={
        "key": "events", "name": "Events", "text": "Invite me to events.", "csrf_token": token})
    assert response.status_code == 302
    purpose = consent.by_key("events")
    assert purpose is not None and purpose.current_text.text == "Invite me to events."
    response = client.post(f"/admin/privacy/purposes/{purpose.id}", data={
        "key": "ignored", "name": "Events", "text": "Invite me to webinars.", "csrf_token": token})
    assert response.status_code == 302
    db.session.expire_all()
    assert purpose.key == "events" and [t.version for t in purpose.texts] == [1, 2]
    html = client.get("/admin/privacy/purposes").get_data(as_text=True)
    assert "Invite me to webinars." in html
    bad = client.post("/admin/privacy/purposes", data={
        "key": "9bad", "name": "Bad", "text": "x", "csrf_token": token})
    assert bad.status_code == 400 and "lower-case" in bad.get_data(as_text=True)


def test_lead_page_shows_consent_per_purpose(app, client, auth):
    auth.login_as("marketer")
    lead = upsert_lead("ann@example.com").lead
    news = consent.define("product_news", "Product news", "News, please.")
    consent.define("events", "Events", "Invite me.")
    consent.grant(lead, news, source="form")
    db.session.commit()
    html = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "Product news: <strong>agreed</strong>" in html
    assert "Events: not asked" in html

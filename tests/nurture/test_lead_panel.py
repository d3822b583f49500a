"""Nurture on the lead page: enroll and remove; unsubscribe and resubscribe with the consent
text recorded; a bounced address stays suppressed."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import db, utcnow
from nurture.models import Enrollment, Suppression
from tests.helpers import csrf_from
from tests.nurture.factories import events, make_lead, make_sequence


def _token(client, lead_id):
    return csrf_from(client.get(f"/admin/leads/{lead_id}").get_data(as_text=True))


def test_enroll_and_remove_from_the_lead_page(app, client, auth):
    auth.login_as("marketer")
    sequence = make_sequence(name="Onboarding")
    lead = make_lead()
    token = _token(client, lead.id)
    client.post(f"/admin/leads/{lead.id}/enroll", data={
        "enroll-csrf_token": token, "enroll-sequence_id": str(sequence.id)})
    (enrollment,) = db.session.scalars(sa.select(Enrollment)).all()
    assert enrollment.is_live and enrollment.source == "added by marketer@example.com"
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "Remove from “Onboarding”" in page
    client.post(f"/admin/leads/{lead.id}/enrollments/{enrollment.id}/remove",
                data={"csrf_token": token})
    db.session.expire_all()
    assert not db.session.get(Enrollment, enrollment.id).is_live
    # A second enroll of a sequence that does not re-enroll says why.
    response = client.post(f"/admin/leads/{lead.id}/enroll", data={
        "enroll-csrf_token": token, "enroll-sequence_id": str(sequence.id)},
        follow_redirects=True)
    assert "Not enrolled: the sequence does not re-enroll leads." in response.get_data(as_text=True)


def test_unsubscribe_and_resubscribe_record_the_consent_text(app, client, auth):
    auth.login_as("marketer")
    lead = make_lead()
    token = _token(client, lead.id)
    empty = client.post(f"/admin/leads/{lead.id}/subscription/unsubscribe",
                        data={"sub-csrf_token": token, "sub-consent_text": ""},
                        follow_redirects=True)
    assert "Nothing changed" in empty.get_data(as_text=True)
    client.post(f"/admin/leads/{lead.id}/subscription/unsubscribe",
                data={"sub-csrf_token": token, "sub-consent_text": "Asked by phone"})
    db.session.expire_all()
    assert lead.unsubscribed_at is not None
    assert db.session.scalar(sa.select(Suppression.reason)) == "unsubscribe"
    client.post(f"/admin/leads/{lead.id}/subscription/resubscribe",
                data={"sub-csrf_token": token, "sub-consent_text": "Yes, email me (form v2)"})
    db.session.expire_all()
    assert lead.unsubscribed_at is None
    assert db.session.scalar(sa.select(Suppression.id)) is None
    (_changed, again) = events(lead.id, "subscription_changed")
    assert again.data["reason"] == "Consent: Yes, email me (form v2)"
    assert "Consent: Yes, email me (form v2)" in client.get(
        f"/admin/leads/{lead.id}").get_data(as_text=True)


def test_a_bounced_address_cannot_be_resubscribed(app, client, auth):
    auth.login_as("marketer")
    lead = make_lead()
    lead.bounced_at = utcnow()
    db.session.add(Suppression(email=lead.email, reason="bounce", source="sendgrid"))
    db.session.commit()
    response = client.post(f"/admin/leads/{lead.id}/subscription/resubscribe", data={
        "sub-csrf_token": _token(client, lead.id), "sub-consent_text": "please"},
        follow_redirects=True)
    assert "stays suppressed" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(Suppression.reason)) == "bounce"

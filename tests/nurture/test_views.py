"""Unsubscribe links: a look never unsubscribes; one click (RFC 8058) or the button does."""

import base64
import json

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from nurture.enrollment import enroll
from nurture.models import Suppression
from nurture.unsubscribe import make_token
from tests.nurture.factories import enrollment_of, events, make_lead, make_sequence


def _lead_in_a_sequence():
    lead = make_lead()
    enroll(lead.id, make_sequence().id, "test")
    db.session.commit()
    return lead.id


def _unsubscribed(lead_id: int) -> bool:
    db.session.expire_all()
    return db.session.get(Lead, lead_id).unsubscribed_at is not None


def test_get_only_shows_a_confirm_button(app, client):
    lead_id = _lead_in_a_sequence()
    response = client.get(f"/u/{make_token(lead_id, 5)}")
    assert response.status_code == 200
    assert "<button" in response.get_data(as_text=True)
    assert not _unsubscribed(lead_id)
    assert enrollment_of(lead_id).status == "active"


def test_one_click_post_without_cookies_unsubscribes(app):
    lead_id = _lead_in_a_sequence()
    fresh = app.test_client(use_cookies=False)  # a mailbox provider, not a browser
    response = fresh.post(f"/u/{make_token(lead_id, 5)}", data="List-Unsubscribe=One-Click",
                          content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200  # no redirect
    assert _unsubscribed(lead_id)
    assert db.session.scalar(sa.select(Suppression.reason)) == "unsubscribe"
    enrollment = enrollment_of(lead_id)
    assert enrollment.status == "exited" and enrollment.exit_reason == "unsubscribed"
    (event,) = events(lead_id, "unsubscribed")
    assert (event.data, event.send_id) == ({"source": "one-click"}, 5)
    assert event.details == {"source": "one-click", "send_id": "5"}


def test_the_confirm_button_unsubscribes_and_a_second_time_changes_nothing(app, client):
    lead_id = _lead_in_a_sequence()
    token = make_token(lead_id)
    assert client.post(f"/u/{token}").status_code == 200
    assert client.post(f"/u/{token}").status_code == 200
    assert _unsubscribed(lead_id)
    assert len(events(lead_id, "unsubscribed")) == 1
    assert "already unsubscribed" in client.get(f"/u/{token}").get_data(as_text=True)


def test_a_forged_token_is_refused(app, client):
    lead_id = _lead_in_a_sequence()
    token = make_token(lead_id)
    assert client.post(f"/u/{token[:-2]}xx").status_code == 404
    assert client.get("/u/preview").status_code == 404
    assert not _unsubscribed(lead_id)


def test_the_token_carries_no_address(app):
    lead_id = _lead_in_a_sequence()
    payload = make_token(lead_id, 5).split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert json.loads(decoded) == {"l": lead_id, "s": 5}


def test_an_unsubscribe_link_never_expires(app):
    from datetime import timedelta

    import time_machine

    from app.db import utcnow

    lead_id = _lead_in_a_sequence()
    token = make_token(lead_id, 5)
    with time_machine.travel(utcnow() + timedelta(days=10 * 365)):
        response = app.test_client(use_cookies=False).post(
            f"/u/{token}", data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert _unsubscribed(lead_id)


def _two_journeys_and_a_send():
    """A lead in two sequences who got the first email of one of them."""
    from nurture import engine
    from tests.nurture.factories import drain, email_step, sends, wait_step

    lead = make_lead()
    series = make_sequence(email_step(), wait_step(86400), email_step(), name="Guide series")
    other = make_sequence(wait_step(86400), email_step(), name="Webinar series")
    journey_id = enroll(lead.id, series.id, "test").id
    enroll(lead.id, other.id, "test")
    db.session.commit()
    engine.kick([journey_id])
    drain()
    (send,) = sends()
    return lead.id, send.id, journey_id


def test_the_page_offers_to_stop_only_this_series(app, client):
    from nurture.models import Enrollment

    lead_id, send_id, journey_id = _two_journeys_and_a_send()
    token = make_token(lead_id, send_id)
    page = client.get(f"/u/{token}").get_data(as_text=True)
    assert "Stop this series only" in page and "Guide series" in page
    assert "Unsubscribe from all emails" in page
    assert not _unsubscribed(lead_id)  # looking changes nothing

    done = client.post(f"/u/{token}", data={"scope": "series"})
    assert done.status_code == 200 and "You left" in done.get_data(as_text=True)
    db.session.expire_all()
    assert not _unsubscribed(lead_id)
    assert db.session.scalar(sa.select(Suppression.id)) is None
    statuses = {e.id: e.status for e in db.session.scalars(sa.select(Enrollment))}
    assert statuses.pop(journey_id) == "exited"
    assert list(statuses.values()) == ["active"]  # the other sequence goes on
    again = client.post(f"/u/{token}", data={"scope": "series"})  # a second press
    assert again.status_code == 200 and not _unsubscribed(lead_id)


def test_one_click_always_unsubscribes_from_everything(app):
    lead_id, send_id, _ = _two_journeys_and_a_send()
    fresh = app.test_client(use_cookies=False)
    fresh.post(f"/u/{make_token(lead_id, send_id)}", data={"List-Unsubscribe": "One-Click",
                                                            "scope": "series"})
    assert _unsubscribed(lead_id)
    from nurture.models import Enrollment

    assert {e.status for e in db.session.scalars(sa.select(Enrollment))} == {"exited"}

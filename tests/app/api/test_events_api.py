"""POST /api/v1/events: batches of custom events, idempotent by the client's id, counted by
scoring rules."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead
from app.leads.service import upsert_lead
from tests.app.api.conftest import ApiClient


def _events(n: int, **extra) -> list[dict]:
    return [{"id": f"evt-{i}", "type": "webinar_attended", "email": f"p{i % 3}@example.com",
             **extra} for i in range(n)]


def test_a_batch_is_stored_once_even_when_sent_twice(api: ApiClient):
    upsert_lead("p0@example.com")
    db.session.commit()
    first = api.post("/api/v1/events", {"events": _events(10)})
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"received": 10, "created": 10, "duplicates": 0}
    again = api.post("/api/v1/events", {"events": _events(12)})
    assert again.get_json() == {"received": 12, "created": 2, "duplicates": 10}
    rows = db.session.scalars(sa.select(Event).where(Event.type == "custom.webinar_attended"))
    assert len(rows.all()) == 12
    # p1 and p2 were new people: created as leads by the API
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 3


def test_batch_over_the_limit_and_bad_items_are_422_naming_them(api: ApiClient):
    body = api.post("/api/v1/events", {"events": _events(1001)}).get_json()
    assert body["status"] == 422 and body["errors"][0]["field"] == "events"
    bad = _events(3)
    bad[2]["type"] = "Not Valid!"
    body = api.post("/api/v1/events", {"events": bad}).get_json()
    assert body["errors"][0]["field"] == "events.2.type"
    bad = _events(2)
    bad[1]["colour"] = "red"
    body = api.post("/api/v1/events", {"events": bad}).get_json()
    assert body["errors"][0]["field"] == "events.1.colour"
    body = api.post("/api/v1/events", {"events": [{"id": "x", "type": "a",
                                                    "lead_id": 999999}]}).get_json()
    assert body["errors"][0]["field"] == "events.0.lead_id"
    body = api.post("/api/v1/events", {"events": [{"id": "x", "type": "a"}]}).get_json()
    assert body["errors"][0]["field"] == "events.0.email"
    twice = [{"id": "same", "type": "a", "email": "a@example.com"}] * 2
    body = api.post("/api/v1/events", {"events": twice}).get_json()
    assert body["errors"][0]["field"] == "events.1.id"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0


def test_a_scoring_rule_counts_custom_events(api: ApiClient):
    from app.db import utcnow
    from nurture.scoring.compute import engagement
    from nurture.scoring.rules import Rules, default_rules

    data = default_rules().to_dict()
    data["engagement"] = [{"event_type": "custom.webinar_attended", "points": 20,
                           "daily_cap": 40}]
    rules = Rules.from_dict(data)
    lead = upsert_lead("p0@example.com").lead
    db.session.commit()
    api.post("/api/v1/events", {"events": [{"id": "w1", "type": "webinar_attended",
                                            "lead_id": lead.id}]})
    events = db.session.scalars(sa.select(Event).where(Event.lead_id == lead.id)).all()
    result = engagement(events, rules, utcnow())
    assert round(result.score) == 20


def test_read_token_cannot_send_events(read_api: ApiClient):
    assert read_api.post("/api/v1/events", {"events": _events(1)}).status_code == 403


def test_scoring_is_asked_about_the_leads_that_got_events(api: ApiClient, redis_conn):
    from nurture.scoring.incremental import pending_key

    lead = upsert_lead("p0@example.com").lead
    other = upsert_lead("p9@example.com").lead
    db.session.commit()
    api.post("/api/v1/events", {"events": [{"id": "s1", "type": "demo_booked",
                                            "lead_id": lead.id}]})
    assert redis_conn.exists(pending_key(lead.id))
    assert not redis_conn.exists(pending_key(other.id))


def test_an_event_dated_in_the_future_is_422_and_leaves_the_lead_as_it_was(api: ApiClient):
    """An event from next year (a wrong year, a local time sent as UTC a day early…) would be
    the lead's last activity and never decay: refused, beyond an hour of clock skew."""
    from datetime import timedelta

    from app.db import utcnow

    lead = upsert_lead("p0@example.com").lead
    db.session.commit()
    active = lead.last_activity_at
    stored = db.session.scalar(sa.select(sa.func.count()).select_from(Event))
    soon = (utcnow() + timedelta(minutes=30)).isoformat()
    later = (utcnow() + timedelta(days=1)).isoformat()
    for when in (later, "9999-12-31T23:59:59+14:00"):
        events = _events(3)
        events[1]["occurred_at"] = when
        body = api.post("/api/v1/events", {"events": events}).get_json()
        assert body["status"] == 422 and body["errors"][0]["field"] == "events.1.occurred_at"
        assert "future" in body["detail"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == stored
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).last_activity_at == active
    ok = api.post("/api/v1/events", {"events": _events(1, occurred_at=soon)})
    assert ok.status_code == 200, ok.get_json()


def _made_meanwhile(email: str):
    """Another request makes the lead for `email` between this request's look for it and its
    own insert (two batches naming one new person, sent in parallel)."""
    from contextlib import contextmanager

    from sqlalchemy import event
    from sqlalchemy.orm import Session

    def before_flush(session, _context, _instances) -> None:
        if not any(isinstance(o, Lead) for o in session.new) or made:
            return
        made.append(email)
        with Session(db.engine) as other:
            other.add(Lead(email=email, email_display=email, attributes={}, stage="lead"))
            other.commit()

    @contextmanager
    def racing():
        event.listen(db.session, "before_flush", before_flush)
        try:
            yield made
        finally:
            event.remove(db.session, "before_flush", before_flush)

    made: list[str] = []
    return racing()


def test_a_new_person_made_by_a_parallel_request_gets_the_events_not_a_500(api: ApiClient):
    with _made_meanwhile("p0@example.com") as made:
        response = api.post("/api/v1/events", {"events": _events(1)})
    assert made and response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["created"] == 1
    [lead] = db.session.scalars(sa.select(Lead)).all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)
                             .where(Event.lead_id == lead.id)) >= 1
    with _made_meanwhile("new@example.com") as made:
        response = api.post("/api/v1/leads", {"email": "new@example.com", "company": "Acme"})
    assert made and response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["company"] == "Acme"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 2

"""Last activity: the lead's own newest human event, kept by record_event and, for events
written in bulk, by the periodic refresh (machines and staff actions never count)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads import activity
from app.leads.models import Event
from app.leads.service import record_event, upsert_lead


def test_record_event_keeps_last_activity_of_the_leads_own_doing(app):
    lead = upsert_lead("ann@example.com", source="t").lead
    created = lead.last_activity_at
    record_event(lead, "email_opened", is_bot=True, occurred_at=utcnow() + timedelta(hours=1))
    record_event(lead, "owner_assigned", occurred_at=utcnow() + timedelta(hours=2))
    assert lead.last_activity_at == created
    later = utcnow() + timedelta(hours=3)
    record_event(lead, "page_viewed", occurred_at=later)
    assert lead.last_activity_at == later


def test_events_written_in_bulk_are_caught_by_the_refresh(app):
    lead = upsert_lead("ann@example.com", source="t").lead
    db.session.commit()
    human, machine = utcnow() + timedelta(hours=1), utcnow() + timedelta(hours=5)
    db.session.execute(sa.insert(Event), [
        {"lead_id": lead.id, "type": "email_clicked", "occurred_at": human, "data": {},
         "is_bot": False},
        {"lead_id": lead.id, "type": "email_clicked", "occurred_at": machine, "data": {},
         "is_bot": True},
        {"lead_id": lead.id, "type": "email_sent", "occurred_at": machine, "data": {},
         "is_bot": False}])
    db.session.commit()
    assert activity.refresh() == 1
    db.session.expire_all()
    assert lead.last_activity_at == human
    assert activity.refresh() == 0  # idempotent

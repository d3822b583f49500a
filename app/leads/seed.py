"""Demo data of the lead workspace: a note and tasks on the first demo lead."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.auth.models import find_user_by_email
from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.work import LeadNote, add_note, add_task

DEMO_LEAD = "dana.director@acme-industrial.example.com"


def seed_workspace() -> list[str]:
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == DEMO_LEAD))
    marketer = find_user_by_email("marketer@example.com")
    sales = find_user_by_email("sales@example.com")
    if lead is None or marketer is None:
        return []
    if db.session.scalar(sa.select(LeadNote.id).where(LeadNote.lead_id == lead.id)) is None:
        add_note(lead.id, "Met Dana at the Leeds trade show; asked about volume pricing.",
                 marketer.id)
        add_task(lead.id, "Send the volume pricing sheet", utcnow() + timedelta(days=2),
                 (sales or marketer).id, marketer.id)
        add_task(lead.id, "Call about the trade show follow-up", utcnow() - timedelta(hours=3),
                 (sales or marketer).id, marketer.id)
        db.session.commit()
    return [f"Lead workspace: notes and tasks on /admin/leads/{lead.id}"]

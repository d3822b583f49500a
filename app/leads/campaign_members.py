"""Which leads have had activity in which campaign: `lead_campaigns`, one row per (lead,
campaign) with the lead's creation time, so the leads list's campaign filter walks one
campaign's leads newest first straight from an index (and counts them from it), instead of
walking every lead and asking the events of each.

Kept by the database itself: a trigger on events adds the row when an event with a lead and a
campaign is written (by any writer, one row or a bulk INSERT) or an anonymous visitor's event is
attached to its lead later; a trigger on leads moves `created_at` with the lead's. A row stays
when the events behind it are pruned (the lead still came through that campaign); it goes with
its lead.

SQLite drops a table's triggers when Alembic's batch mode rebuilds the table: a migration that
rebuilds `events` or `leads` there calls `install(bind)` again afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Model, UTCDateTime


class LeadCampaign(Model):
    __tablename__ = "lead_campaigns"
    __table_args__ = (
        # One campaign's leads newest first (the list's default order), and its capped count.
        sa.Index("ix_lead_campaigns_campaign_created", "campaign_id", "created_at", "lead_id"),
    )

    # The primary key leads with lead_id: "is this lead in campaign C" (other sorts), the
    # cascade from leads, and the created_at trigger all look a lead up by it.
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"),
                                         primary_key=True)
    campaign_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the lead's, kept by a trigger


_POSTGRESQL = [
    """CREATE OR REPLACE FUNCTION lead_campaigns_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM lead_campaigns
                   WHERE lead_id = NEW.lead_id AND campaign_id = NEW.campaign_id) THEN
        INSERT INTO lead_campaigns (lead_id, campaign_id, created_at)
        SELECT l.id, NEW.campaign_id, l.created_at FROM leads l WHERE l.id = NEW.lead_id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_events_lead_campaigns AFTER INSERT OR UPDATE OF lead_id, campaign_id
ON events FOR EACH ROW WHEN (NEW.lead_id IS NOT NULL AND NEW.campaign_id IS NOT NULL)
EXECUTE FUNCTION lead_campaigns_add()""",
    """CREATE OR REPLACE FUNCTION lead_campaigns_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_campaigns SET created_at = NEW.created_at WHERE lead_id = NEW.id;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_leads_lead_campaigns AFTER UPDATE OF created_at ON leads FOR EACH ROW
WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at) EXECUTE FUNCTION lead_campaigns_created()""",
]

_SQLITE_ADD = """INSERT OR IGNORE INTO lead_campaigns (lead_id, campaign_id, created_at)
    SELECT id, NEW.campaign_id, created_at FROM leads WHERE id = NEW.lead_id;"""
_SQLITE = [
    f"""CREATE TRIGGER tr_events_lead_campaigns AFTER INSERT ON events
WHEN NEW.lead_id IS NOT NULL AND NEW.campaign_id IS NOT NULL
BEGIN {_SQLITE_ADD} END""",
    f"""CREATE TRIGGER tr_events_lead_campaigns_attach AFTER UPDATE OF lead_id, campaign_id
ON events WHEN NEW.lead_id IS NOT NULL AND NEW.campaign_id IS NOT NULL
BEGIN {_SQLITE_ADD} END""",
    """CREATE TRIGGER tr_leads_lead_campaigns AFTER UPDATE OF created_at ON leads
WHEN NEW.created_at IS NOT OLD.created_at
BEGIN UPDATE lead_campaigns SET created_at = NEW.created_at WHERE lead_id = NEW.id; END""",
]

TRIGGERS = {"postgresql": ["tr_events_lead_campaigns ON events",
                           "tr_leads_lead_campaigns ON leads"],
            "sqlite": ["tr_events_lead_campaigns", "tr_events_lead_campaigns_attach",
                       "tr_leads_lead_campaigns"]}


def install(bind: Any) -> None:
    """Create (again) the triggers that keep lead_campaigns (migrations call it)."""
    remove(bind)
    for statement in _POSTGRESQL if bind.dialect.name == "postgresql" else _SQLITE:
        bind.execute(sa.text(statement))


def remove(bind: Any) -> None:
    for name in TRIGGERS["postgresql" if bind.dialect.name == "postgresql" else "sqlite"]:
        bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("DROP FUNCTION IF EXISTS lead_campaigns_add()"))
        bind.execute(sa.text("DROP FUNCTION IF EXISTS lead_campaigns_created()"))


BACKFILL = """INSERT INTO lead_campaigns (lead_id, campaign_id, created_at)
SELECT l.id, c.campaign_id, l.created_at
FROM (SELECT DISTINCT lead_id, campaign_id FROM events
      WHERE lead_id IS NOT NULL AND campaign_id IS NOT NULL) c
JOIN leads l ON l.id = c.lead_id"""

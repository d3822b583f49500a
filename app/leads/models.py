"""Lead, Event and StageChange: the model every feature reads and writes."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, Model, UTCDateTime, utcnow
from app.leads.event_columns import DedupeDigest, OptionalJSON, with_send
from app.leads.event_types import EventType

# An integer primary key that is 64-bit on PostgreSQL and still autoincrements on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Stage(str, enum.Enum):
    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    LOST = "lost"  # an opportunity that did not close
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"

    @property
    def label(self) -> str:
        return {"mql": "MQL", "sql": "SQL"}.get(self.value, self.value.capitalize())


# Unsubscribed or bounced: the leads list's "suppressed" filter says it in these words (so the
# partial index ix_leads_suppressed_created serves it).
SUPPRESSED_SQL = "unsubscribed_at IS NOT NULL OR bounced_at IS NOT NULL"


# `email_display` of a person erased on request (app.privacy.erase): the row stays for the
# reports' totals and takes no personal data again.
ERASED_DISPLAY = "(erased)"


class Lead(Model):
    __tablename__ = "leads"
    __table_args__ = (
        # Keyset pages of the leads list, one per sort.
        sa.Index("ix_leads_created", "created_at", "id"),
        sa.Index("ix_leads_activity", "last_activity_at", "id"),
        sa.Index("ix_leads_fit", "fit_score", "id"),
        sa.Index("ix_leads_engagement", "engagement_key", "id"),
        sa.Index("ix_leads_name", "last_name", "first_name", "id"),
        # Filters whose matches are few, newest first (the default order) and capped counts
        # without a table scan: an owner's leads (also the owner_id foreign key's index) and
        # the suppressed ones (a partial index: only they are in it).
        sa.Index("ix_leads_owner_created", "owner_id", "created_at", "id"),
        sa.Index("ix_leads_suppressed_created", "created_at", "id",
                 postgresql_where=sa.text(SUPPRESSED_SQL), sqlite_where=sa.text(SUPPRESSED_SQL)),
        # A stage in the default order (the API's oldest first), without a sort.
        sa.Index("ix_leads_stage_created", "stage", "created_at", "id"),
        # The API's `updated_since` (an integration's "what changed since my last sync").
        sa.Index("ix_leads_updated", "updated_at", "id"),
        # The search: the start of the email, company, last or first name
        # (app.leads.query); text_pattern_ops so LIKE 'abc%' uses them under any collation.
        # The lower(...) ones on PostgreSQL only (SQLite is for development).
        sa.Index("ix_leads_email_prefix", "email", postgresql_ops={"email": "text_pattern_ops"}),
        *[sa.Index(f"ix_leads_{name}_prefix", sa.func.lower(sa.column(name)).label(name),
                   postgresql_ops={name: "text_pattern_ops"}).ddl_if(dialect="postgresql")
          for name in ("company", "last_name", "first_name")],
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Identity: lower-cased, trimmed address; the address as typed is kept for display.
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    email_display: Mapped[str] = mapped_column(sa.String(320))
    first_name: Mapped[str] = mapped_column(sa.String(100), default="")
    last_name: Mapped[str] = mapped_column(sa.String(100), default="")
    company: Mapped[str] = mapped_column(sa.String(200), default="")
    job_title: Mapped[str] = mapped_column(sa.String(200), default="")
    phone: Mapped[str] = mapped_column(sa.String(50), default="")
    country: Mapped[str] = mapped_column(sa.String(2), default="")  # ISO 3166-1 alpha-2
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    stage: Mapped[str] = mapped_column(sa.String(20), default=Stage.LEAD.value)
    fit_score: Mapped[int] = mapped_column(default=0)
    # Engagement as computed at `engagement_at`; read it as of now with
    # `app.leads.engagement.current` (it decays). The key orders and filters it in SQL.
    engagement_score: Mapped[float] = mapped_column(sa.Float, default=0.0)
    engagement_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    engagement_key: Mapped[float] = mapped_column(sa.Float, default=-1.0e9)
    # The newest human activity (an event not marked as a machine's): set by record_event,
    # and by `app.leads.activity.refresh` for events written in bulk.
    # A new lead's is its creation.
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    owner_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Known only from a double opt-in form whose link they have not confirmed yet: scoring
    # does not qualify them, sales is not alerted, the qualified export leaves them out.
    awaiting_confirmation: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    owner = relationship("User", foreign_keys=[owner_id])
    events = relationship(
        "Event", back_populates="lead", order_by="Event.occurred_at.desc()", lazy="dynamic"
    )
    stage_changes = relationship(
        "StageChange", back_populates="lead", order_by="StageChange.changed_at.desc()",
        lazy="dynamic",
    )

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def display_name(self) -> str:
        return self.full_name or self.email_display

    @property
    def stage_label(self) -> str:
        return Stage(self.stage).label

    @property
    def engagement_now(self) -> float:
        from app.leads.engagement import current

        return current(self)

    @property
    def can_be_emailed(self) -> bool:
        return self.unsubscribed_at is None and self.bounced_at is None

    @property
    def erased(self) -> bool:
        """Erased on request: a tombstone that takes no personal data again."""
        return self.email_display == ERASED_DISPLAY

    def __repr__(self) -> str:
        return f"<Lead {self.id} {self.stage}>"


class Event(Model):
    """Append-only activity log. Scores are recomputable from it, so rows are never edited
    except to attach an anonymous visitor's events to the lead it turns out to be.

    Kept small (issue 14): the type is an integer code (`app.leads.event_types`), `data` is
    NULL when empty, the dedupe key an 8-byte digest (`app.leads.event_columns`), and the
    nurture email an event is about is two integer columns, `send_id` and `step_id`, not keys
    of `data` (8 bytes in the row instead of ~40 of JSON). Users see them as before, in the
    event's data: `details` (timeline, API, exports, webhook payloads)."""

    __tablename__ = "events"
    __table_args__ = (
        # A lead's events (timeline, scoring, last activity). On lead_id alone: PostgreSQL
        # stores one entry per lead with its rows' addresses (B-tree deduplication), a few bytes
        # per event instead of ~40 for (lead_id, occurred_at); a lead's events are sorted after.
        sa.Index("ix_events_lead", "lead_id"),
        # Reads of a time window (the rollups' day of one type, the tracking page's week, the
        # reputation check's day): ids, so pages, follow time, so on PostgreSQL a BRIN index
        # finds the window's pages for a few bytes per 10,000 events (a B-tree on (type,
        # occurred_at) cost 32 bytes per event; issue 14). minmax-multi: an event written late
        # (a provider's retry, a backdated import) does not widen its range to everything;
        # ranges of 16 pages (~1,000 events): a day's read takes few other days' rows along.
        sa.Index("ix_events_time", "occurred_at", postgresql_using="brin",
                 postgresql_ops={"occurred_at": "timestamptz_minmax_multi_ops"},
                 postgresql_with={"pages_per_range": 16}),
        # Most events have no browser id or campaign: index only those that do (every query
        # asks for given values, which a partial index serves), not a NULL per row.
        sa.Index("ix_events_visitor_id", "visitor_id",
                 postgresql_where=sa.text("visitor_id IS NOT NULL"),
                 sqlite_where=sa.text("visitor_id IS NOT NULL")),
        # The campaign's leads too (the leads list's campaign filter asks "has this lead an
        # event of campaign C": one index-only probe).
        sa.Index("ix_events_campaign_lead", "campaign_id", "lead_id",
                 postgresql_where=sa.text("campaign_id IS NOT NULL"),
                 sqlite_where=sa.text("campaign_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    visitor_id: Mapped[str | None] = mapped_column(sa.String(64))
    type: Mapped[str] = mapped_column(EventType)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    campaign_id: Mapped[int | None] = mapped_column()
    url: Mapped[str | None] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any]] = mapped_column(OptionalJSON, default=dict, nullable=True)
    is_bot: Mapped[bool] = mapped_column(default=False)
    bot_reason: Mapped[str | None] = mapped_column(sa.String(200))
    # Set by writers that may run twice (at-least-once jobs, webhook retries): one row per key.
    dedupe_key: Mapped[str | None] = mapped_column(DedupeDigest, unique=True)
    # The nurture send (nurture_sends.id) and its step an email event is about. No foreign
    # key: the core knows nothing of nurture, and an event outlives its send's ledger row.
    send_id: Mapped[int | None] = mapped_column(sa.Integer)
    step_id: Mapped[int | None] = mapped_column(sa.Integer)

    lead = relationship("Lead", back_populates="events")

    @property
    def details(self) -> dict[str, Any]:
        """`data` as users see it: with the send and step it is about, as they were stored
        in it before they became columns (`send_id` a string, `step_id` a number)."""
        return with_send(self.data, self.send_id, self.step_id)

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.type} lead={self.lead_id}>"


class EventTypeName(Model):
    """The name of each event type code outside the fixed table (`app.leads.event_types`
    writes and reads it with plain SQL; declared here so the schema is the models')."""

    __tablename__ = "event_types"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)


class StageChange(Model):
    __tablename__ = "stage_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    from_stage: Mapped[str | None] = mapped_column(sa.String(20))
    to_stage: Mapped[str] = mapped_column(sa.String(20))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    # Who or what did it: "user", "scoring", "import", "system", `form “<name>”` ...
    actor: Mapped[str] = mapped_column(sa.String(200), default="system")
    actor_user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

    lead = relationship("Lead", back_populates="stage_changes")
    actor_user = relationship("User")

    @property
    def actor_label(self) -> str:
        if self.actor_user is not None:
            return self.actor_user.email
        return self.actor


@sa.event.listens_for(Lead.engagement_score, "set")
def _engagement_stamped(target: Lead, value: float | None, _old: Any, _initiator: Any) -> None:
    """Whoever sets a lead's engagement sets it as of now: its time and key follow (a caller
    that knows another time, `app.leads.engagement.store`, sets them after)."""
    from app.leads.engagement import key_for

    at = utcnow()
    target.engagement_at = at
    target.engagement_key = key_for(float(value or 0.0), at)

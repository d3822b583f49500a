"""Tracking's own tables: the links of each send, which browser belongs to which lead, and
the sending pause a high spam-report rate puts in place."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import JSONType, Model, UTCDateTime, utcnow


class SendLink(Model):
    """A link as it was in a sent email. A click token names (send, index); the redirect
    target is read from here, never from the request."""

    __tablename__ = "nurture_send_links"
    __table_args__ = (sa.UniqueConstraint("send_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    send_id: Mapped[int] = mapped_column(sa.ForeignKey("nurture_sends.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column()
    url: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Visitor(Model):
    """A browser (the `kv` cookie, or the id the site script keeps) known to be a lead."""

    __tablename__ = "tracking_visitors"

    visitor_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"),
                                         index=True)
    source: Mapped[str] = mapped_column(sa.String(40), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SendingPause(Model):
    """Workspace-wide stop on nurture email, put in place when the spam-report rate is too
    high. The engine reads `nurture.tracking.health.sending_paused()`; the sequences that were
    active are also paused and listed here, so lifting the pause resumes exactly those."""

    __tablename__ = "tracking_sending_pauses"

    id: Mapped[int] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(sa.String(300))
    spam_rate: Mapped[float] = mapped_column(sa.Float, default=0.0)
    sequence_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(sa.String(320))

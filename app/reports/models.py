"""The reports' own tables: per-lead facts, daily counts, and where the refresh left off.

Derived data only: `flask reports rebuild-rollups` makes all of it again from the leads, stage
changes and events. No foreign key to leads on purpose: an erased lead's facts (no personal data
in them) keep the totals the reports showed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import JSONType, Model, UTCDateTime, utcnow


class ReportLead(Model):
    """One lead as the reports see it: when it came, through which channel and campaign, and
    when it first reached each funnel stage (or a later one: a lead moved straight from SQL to
    customer has reached opportunity too)."""

    __tablename__ = "report_leads"

    lead_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_day: Mapped[date] = mapped_column(sa.Date, index=True)
    # hosted | embed | import | api | other
    channel: Mapped[str] = mapped_column(sa.String(10), default="other")
    campaign_id: Mapped[int] = mapped_column(default=0)  # 0: no campaign
    utm_source: Mapped[str] = mapped_column(sa.String(100), default="")
    mql_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    sql_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    opportunity_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    customer_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The leads list filters by first-touch source and UTM source (app.leads.query): these find a
# source's leads without reading every lead's row here (utm_source is stored lower-case:
# `facts.utm_of`).
sa.Index("ix_report_leads_channel", ReportLead.channel, ReportLead.lead_id)
sa.Index("ix_report_leads_utm_source", ReportLead.utm_source, ReportLead.lead_id)


class ReportDaily(Model):
    """A count for one UTC day: a metric by campaign, channel, UTM source and a detail (the
    email step, ...). Reports add days up; a day is always rebuilt whole."""

    __tablename__ = "report_daily"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    metric: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    utm_source: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    detail: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"))


class ReportState(Model):
    """Where the refresh left off: per source table, the highest id seen by the last two runs."""

    __tablename__ = "report_state"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

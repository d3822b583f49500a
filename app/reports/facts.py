"""Per-lead facts (`report_leads`): how each lead came and when it reached each stage.

A lead's channel, campaign and UTM source are those of the form submission that created it
(`form_submitted` with `new_lead`): `hosted` or `embed`, the landing page's campaign, or for an
embedded form the campaign it is credited to (`report_credit`, from the campaigns package).
Leads made otherwise take their channel from the source that created them (an import, the API);
anything else is `other`.

"Reached" is cumulative along the funnel MQL → SQL → opportunity → customer: the first time the
lead entered that stage or a later one. So a lead moved straight from SQL to customer counts in
opportunity too, and no conversion rate goes over 100 %. `lost_at` is the first move to lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event, Lead, StageChange
from app.reports.days import as_date
from app.reports.models import ReportLead
from app.reports.registry import credit_function

FUNNEL = ("mql", "sql", "opportunity", "customer")
STAGE_COLUMNS = ("mql_at", "sql_at", "opportunity_at", "customer_at", "lost_at")
CHANNELS = ("hosted", "embed", "import", "api", "other")
CHUNK = 1000


def channel_from_source(actor: str | None) -> str:
    text = (actor or "").strip().lower()
    if "import" in text:
        return "import"
    if text.startswith("api"):
        return "api"
    return "other"


def _first_new_lead_forms(ids: list[int]) -> dict[int, tuple[int | None, dict[str, Any]]]:
    rows = db.session.execute(
        sa.select(Event.lead_id, Event.campaign_id, Event.data)
        .where(Event.type == "form_submitted", Event.lead_id.in_(ids))
        .order_by(Event.lead_id, Event.occurred_at, Event.id)).all()
    found: dict[int, tuple[int | None, dict[str, Any]]] = {}
    for lead_id, campaign_id, data in rows:
        if lead_id not in found and isinstance(data, dict) and data.get("new_lead"):
            found[lead_id] = (campaign_id, data)
    return found


def utm_of(data: dict[str, Any], key: str) -> str:
    utm = data.get("utm") if isinstance(data, dict) else None
    value = utm.get(key) if isinstance(utm, dict) else None
    return str(value).strip().lower()[:100] if isinstance(value, (str, int)) else ""


def _days(row: dict[str, Any] | None) -> set[date]:
    if row is None:
        return set()
    out = {as_date(row["created_day"])}
    out.update(as_date(row[c]) for c in STAGE_COLUMNS if row[c] is not None)
    return out


def _compute(ids: list[int], credit) -> list[dict[str, Any]]:
    leads = db.session.execute(sa.select(Lead.id, Lead.created_at)
                               .where(Lead.id.in_(ids))).all()
    if not leads:
        return []
    creators = dict(db.session.execute(
        sa.select(StageChange.lead_id, StageChange.actor)
        .where(StageChange.lead_id.in_(ids), StageChange.from_stage.is_(None))
        .order_by(StageChange.id.desc())).all())  # the dict keeps each lead's first
    forms = _first_new_lead_forms(ids)
    reached: dict[int, dict[str, datetime]] = {}
    for lead_id, stage, when in db.session.execute(
            sa.select(StageChange.lead_id, StageChange.to_stage,
                      sa.func.min(StageChange.changed_at))
            .where(StageChange.lead_id.in_(ids),
                   StageChange.to_stage.in_((*FUNNEL, "lost")))
            .group_by(StageChange.lead_id, StageChange.to_stage)).all():
        reached.setdefault(lead_id, {})[stage] = when
    now = utcnow()
    rows = []
    for lead_id, created_at in leads:
        campaign_id, channel, source = None, channel_from_source(creators.get(lead_id)), ""
        if lead_id in forms:
            event_campaign, data = forms[lead_id]
            channel = str(data.get("channel") or "hosted")[:10]
            source = utm_of(data, "utm_source")
            campaign_id = credit(event_campaign, data.get("form_id"),
                                 utm_of(data, "utm_campaign"))
        times = reached.get(lead_id, {})
        row = {"lead_id": lead_id, "created_at": created_at,
               "created_day": as_date(created_at), "channel": channel,
               "campaign_id": int(campaign_id or 0), "utm_source": source,
               "lost_at": times.get("lost"), "refreshed_at": now}
        for index, stage in enumerate(FUNNEL):
            later = [times[s] for s in FUNNEL[index:] if s in times]
            row[f"{stage}_at"] = min(later) if later else None
        rows.append(row)
    return rows


def refresh(lead_ids: Iterable[int]) -> set[date]:
    """Recompute the facts of these leads (those still there). Returns every day whose counts
    may have changed: the old and the new days of each lead. Does not commit."""
    ids = sorted({int(i) for i in lead_ids})
    credit = credit_function()
    touched: set[date] = set()
    columns = ("created_day", *STAGE_COLUMNS, "campaign_id", "channel", "utm_source")
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        old = {row.lead_id: dict(zip(columns, row[1:])) for row in db.session.execute(
            sa.select(ReportLead.lead_id, *(getattr(ReportLead, c) for c in columns))
            .where(ReportLead.lead_id.in_(part)))}
        new = _compute(part, credit)
        for row in new:
            before = old.get(row["lead_id"])
            if before is None or any(before[c] != row[c] for c in columns):
                touched |= _days(before) | _days(row)
        if new:
            db.session.execute(sa.delete(ReportLead).where(
                ReportLead.lead_id.in_([row["lead_id"] for row in new])))
            db.session.execute(sa.insert(ReportLead), new)
    return touched

"""Daily rollups: keeping `report_leads` and `report_daily` current, and rebuilding them.

`refresh()` (periodic, `REPORTS_ROLLUP_INTERVAL`) is incremental and idempotent:
1. the facts of leads that are new, or have new stage changes, are recomputed (`facts`);
2. every rollup day those facts touched is rebuilt, and so is every day that received events
   of a rollup's types;
3. where it left off (the highest lead, stage-change and event ids) is saved in the same commit.
Each source is read again from the high mark of the run *before* the last one, so a row whose
transaction committed late (its id below a mark already passed) is still seen: rebuilding a day
twice gives the same rows, so reading twice costs time, never correctness.

`rebuild()` (`flask reports rebuild-rollups`) does it all from scratch. A day is always rebuilt
whole (delete its rows, insert the new ones) in one transaction, so a crash halfway leaves
each day either old or new, never counted twice.

The reports read stored days before today and build today live (`query`), so today is never
staler than the lead facts (one refresh interval).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from app.db import db, utcnow
from app.jobs import job
from app.leads.models import Event, Lead, StageChange
from app.reports import facts
from app.reports.days import as_date, bounds, day_sql
from app.reports.models import ReportDaily, ReportLead, ReportState
from app.reports.registry import Rollup, Row, credit_function, refresh_steps, rollups

log = logging.getLogger(__name__)

SOURCES = {"leads": Lead.id, "stage_changes": StageChange.id, "events": Event.id}
LOCK_ID = 0x4B524550  # "KREP": one refresh at a time on PostgreSQL


@dataclass
class Stats:
    leads: int = 0
    days: int = 0
    rows: int = 0
    by_rollup: dict[str, int] = field(default_factory=dict)


def _marks() -> dict[str, list[int]]:
    row = db.session.get(ReportState, "marks")
    return dict(row.value) if row is not None else {}


def _save_marks(marks: dict[str, list[int]]) -> None:
    row = db.session.get(ReportState, "marks") or ReportState(name="marks")
    row.value = marks
    row.updated_at = utcnow()
    db.session.add(row)


def _high(column) -> int:
    return int(db.session.scalar(sa.select(sa.func.max(column))) or 0)


def replace_day(rollup: Rollup, day: date, rows: list[Row]) -> int:
    """The rollup's rows for `day`, instead of what was stored. Does not commit."""
    db.session.execute(sa.delete(ReportDaily).where(ReportDaily.day == day,
                                                    ReportDaily.metric.in_(rollup.metrics)))
    merged: dict[tuple[str, int, str, str, str], int] = {}
    for metric, campaign_id, channel, source, detail, value in rows:
        key = (metric, int(campaign_id or 0), channel or "", source or "", detail or "")
        merged[key] = merged.get(key, 0) + int(value)
    payload = [{"day": day, "metric": m, "campaign_id": c, "channel": ch, "utm_source": s,
                "detail": d, "value": v} for (m, c, ch, s, d), v in merged.items() if v]
    if payload:
        db.session.execute(sa.insert(ReportDaily), payload)
    return len(payload)


def _event_days(types: Iterable[str], after_id: int) -> set[date]:
    types = list(types)
    if not types:
        return set()
    query = sa.select(day_sql(Event.occurred_at)).where(Event.type.in_(types)).distinct()
    if after_id:
        query = query.where(Event.id > after_id)
    return {as_date(d) for d in db.session.scalars(query) if d is not None}


def _lock() -> Callable[[], None] | None:
    """A PostgreSQL advisory lock on a connection of its own; None when another refresh holds
    it. SQLite serialises writers itself. The lock is the session's, so the connection runs
    in autocommit: it waits idle, not "idle in transaction"."""
    if db.session.get_bind().dialect.name != "postgresql":
        return lambda: None
    connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    if not connection.scalar(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": LOCK_ID}):
        connection.close()
        return None

    def release() -> None:
        try:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
        finally:
            connection.close()

    return release


def _prepare(rollup: Rollup) -> None:
    if rollup.prepare is None:
        return
    while rollup.prepare():
        db.session.commit()
    db.session.commit()


def _rebuild_days(days_by_rollup: dict[str, set[date]], stats: Stats, today: date) -> None:
    for rollup in rollups():
        _prepare(rollup)
        for day in sorted(d for d in days_by_rollup.get(rollup.name, set()) if d <= today):
            written = replace_day(rollup, day, rollup.build(day))
            stats.rows += written
            stats.days += 1
            stats.by_rollup[rollup.name] = stats.by_rollup.get(rollup.name, 0) + 1


def refresh() -> Stats | None:
    """Bring the rollups up to date. Commits. None when another refresh is running."""
    release = _lock()
    if release is None:
        return None
    try:
        return _refresh()
    finally:
        release()


def _refresh() -> Stats:
    stats = Stats()
    today = utcnow().date()
    marks = _marks()
    highs = {name: _high(column) for name, column in SOURCES.items()}
    after = {name: (marks.get(name) or [0, 0])[0] for name in SOURCES}
    dirty_leads = set(db.session.scalars(sa.select(Lead.id).where(Lead.id > after["leads"])))
    dirty_leads.update(db.session.scalars(
        sa.select(StageChange.lead_id).where(StageChange.id > after["stage_changes"])
        .distinct()))
    fact_days = facts.refresh(dirty_leads)
    stats.leads = len(dirty_leads)
    days: dict[str, set[date]] = {}
    for rollup in rollups():
        chosen = set(fact_days) if rollup.from_facts else set()
        chosen |= _event_days(rollup.event_types, after["events"])
        if rollup.event_types or rollup.from_facts:
            chosen.add(today)
        days[rollup.name] = chosen
    _rebuild_days(days, stats, today)
    _save_marks({name: [(marks.get(name) or [0, 0])[1], highs[name]] for name in SOURCES})
    db.session.commit()
    for step in refresh_steps():
        step()
        db.session.commit()
    return stats


def rebuild(*, progress: Callable[[str], None] | None = None,
            since: date | None = None) -> Stats:
    """Every fact and every day again, from the source tables. Commits as it goes.

    `since`: rebuild only the days from then on (the facts are always all recomputed): days
    before it keep their rows, e.g. when older events were pruned."""
    release = _lock()
    if release is None:
        raise RuntimeError("another rollup refresh is running; try again in a minute")
    try:
        stats = Stats()
        today = utcnow().date()
        highs = {name: _high(column) for name, column in SOURCES.items()}
        after = 0
        fact_days: set[date] = set()
        while True:
            ids = list(db.session.scalars(sa.select(Lead.id).where(Lead.id > after)
                                          .order_by(Lead.id).limit(5000)))
            if not ids:
                break
            fact_days |= facts.refresh(ids)
            db.session.commit()
            stats.leads += len(ids)
            after = ids[-1]
            if progress:
                progress(f"{stats.leads} leads")
        fact_days |= {as_date(d) for d in db.session.scalars(
            sa.select(ReportLead.created_day).distinct())}
        for column in facts.STAGE_COLUMNS:
            fact_days |= {as_date(d) for d in db.session.scalars(
                sa.select(day_sql(getattr(ReportLead, column))).distinct()) if d is not None}
        for rollup in rollups():
            days = set(fact_days) if rollup.from_facts else set()
            days |= _event_days(rollup.event_types, 0)
            stored = {as_date(d) for d in db.session.scalars(
                sa.select(ReportDaily.day).where(ReportDaily.metric.in_(rollup.metrics))
                .distinct())}
            days |= stored  # days that had counts and may have none now
            days = {d for d in days if d <= today and (since is None or d >= since)}
            _prepare(rollup)
            built = rollup.build_days(days) if rollup.build_days and days else None
            for day in sorted(days):
                rows = built.get(day, []) if built is not None else rollup.build(day)
                written = replace_day(rollup, day, rows)
                db.session.commit()
                stats.rows += written
                stats.days += 1
            stats.by_rollup[rollup.name] = len(days)
            if progress:
                progress(f"{rollup.name}: {len(days)} days")
        _save_marks({name: [highs[name], highs[name]] for name in SOURCES})
        db.session.commit()
        for step in refresh_steps():
            while step():  # a step returns how much it did; rebuild runs it to the end
                db.session.commit()
            db.session.commit()
        return stats
    finally:
        release()


@job
def refresh_job() -> str:
    """Periodic entry point (see `add_periodic` in app.reports.init_app)."""
    stats = refresh()
    if stats is None:
        return "busy"
    return f"{stats.leads} leads, {stats.days} days, {stats.rows} rows"


# The core's own rollups: leads and their stages (from the facts), page visits, submissions.

def build_leads(day: date) -> list[Row]:
    """leads / cohort_<stage> by the lead's creation day; <stage> by the day it was reached."""
    rows: list[Row] = []
    dims = (ReportLead.campaign_id, ReportLead.channel, ReportLead.utm_source)
    counts = [sa.func.count()] + [sa.func.count(getattr(ReportLead, f"{s}_at"))
                                  for s in (*facts.FUNNEL, "lost")]
    for campaign_id, channel, source, *values in db.session.execute(
            sa.select(*dims, *counts).where(ReportLead.created_day == day).group_by(*dims)):
        for metric, value in zip(("leads", *(f"cohort_{s}" for s in (*facts.FUNNEL, "lost"))),
                                 values):
            rows.append((metric, campaign_id, channel, source, "", value))
    start, end = bounds(day)
    for stage in (*facts.FUNNEL, "lost"):
        column = getattr(ReportLead, f"{stage}_at")
        for campaign_id, channel, source, value in db.session.execute(
                sa.select(*dims, sa.func.count()).where(column >= start, column < end)
                .group_by(*dims)):
            rows.append((stage, campaign_id, channel, source, "", value))
    return rows


def build_page_views(day: date) -> list[Row]:
    start, end = bounds(day)
    return [("page_views", campaign_id or 0, "", "", "", value) for campaign_id, value in
            db.session.execute(
                sa.select(Event.campaign_id, sa.func.count())
                .where(Event.type == "page_viewed", Event.occurred_at >= start,
                       Event.occurred_at < end, Event.is_bot.is_(False))
                .group_by(Event.campaign_id))]


def build_submissions(day: date) -> list[Row]:
    """Accepted form submissions: by new leads, and repeats by leads already known."""
    start, end = bounds(day)
    credit = credit_function()
    rows: list[Row] = []
    for campaign_id, data in db.session.execute(
            sa.select(Event.campaign_id, Event.data)
            .where(Event.type == "form_submitted", Event.occurred_at >= start,
                   Event.occurred_at < end, Event.lead_id.is_not(None))):
        data = data if isinstance(data, dict) else {}
        credited = credit(campaign_id, data.get("form_id"), facts.utm_of(data, "utm_campaign"))
        metric = "submissions_new" if data.get("new_lead") else "submissions_repeat"
        rows.append((metric, int(credited or 0), str(data.get("channel") or "hosted")[:10],
                     facts.utm_of(data, "utm_source"), "", 1))
    return rows


CORE_ROLLUPS = (
    Rollup("leads", ("leads", *(f"cohort_{s}" for s in (*facts.FUNNEL, "lost")),
                     *facts.FUNNEL, "lost"), build_leads, from_facts=True),
    Rollup("page_views", ("page_views",), build_page_views, event_types=("page_viewed",)),
    Rollup("submissions", ("submissions_new", "submissions_repeat"), build_submissions,
           event_types=("form_submitted",)),
)

"""Reading the rollups: sums of metrics over a range of days, grouped as a report needs.

Days before today come from `report_daily` (one SQL GROUP BY); today, when in the range, is
built live by the same functions that roll a day up, so a report never waits for the next
refresh to show today's leads and visits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import sqlalchemy as sa

from app.db import db, utcnow
from app.reports.models import ReportDaily
from app.reports.registry import rollups

DIMENSIONS = ("day", "metric", "campaign_id", "channel", "utm_source", "detail")


def sums(metrics: Iterable[str], since: date, until: date, *,
         campaign_id: int | None = None,
         by: Sequence[str] = ("metric",)) -> dict[tuple, int]:
    """{(values of `by`): total} over the days since..until (inclusive)."""
    metrics = list(metrics)
    by = tuple(by)
    if "metric" not in by:
        raise ValueError("group by metric too")
    out: dict[tuple, int] = {}
    today = utcnow().date()
    last_stored = min(until, date.fromordinal(today.toordinal() - 1))
    if since <= last_stored:
        columns = [getattr(ReportDaily, name) for name in by]
        query = (sa.select(*columns, sa.func.sum(ReportDaily.value))
                 .where(ReportDaily.day >= since, ReportDaily.day <= last_stored,
                        ReportDaily.metric.in_(metrics)).group_by(*columns))
        if campaign_id is not None:
            query = query.where(ReportDaily.campaign_id == campaign_id)
        for *parts, value in db.session.execute(query):
            found = tuple(parts)
            out[found] = out.get(found, 0) + int(value or 0)
    if since <= today <= until:
        wanted = set(metrics)
        for rollup in rollups():
            if not wanted.intersection(rollup.metrics):
                continue
            for metric, campaign, channel, source, detail, value in rollup.build(today):
                if metric not in wanted or (campaign_id is not None
                                            and int(campaign or 0) != campaign_id):
                    continue
                row = {"day": today, "metric": metric, "campaign_id": int(campaign or 0),
                       "channel": channel, "utm_source": source, "detail": detail}
                key = tuple(row[name] for name in by)
                out[key] = out.get(key, 0) + int(value)
    return out


def totals(metrics: Iterable[str], since: date, until: date, *,
           campaign_id: int | None = None) -> dict[str, int]:
    metrics = list(metrics)
    found = sums(metrics, since, until, campaign_id=campaign_id)
    return {metric: found.get((metric,), 0) for metric in metrics}

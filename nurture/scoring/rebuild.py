"""Recompute every lead after a rules change, in batches, in constant memory.

Per batch of leads (by id): one read of the profile columns, one read of their human events
ordered by lead and time (only the columns scoring needs), the same pure `assess` as the
incremental job, then one bulk update of the leads whose scores changed and one replace of
their score rows. MQL moves go through `change_stage` like the incremental path.
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator

import sqlalchemy as sa

from app import outbox
from app.db import db, utcnow
from app.leads.models import Event, Lead
from nurture.scoring.compute import Assessment, assess
from nurture.scoring.models import LeadScore
from nurture.scoring.rules import Rules
from nurture.scoring.service import (
    ELIGIBLE_STAGES, ActiveRules, active_rules, event_columns, promote, recycled_since,
)

LEAD_COLUMNS = (Lead.id, Lead.email, Lead.first_name, Lead.last_name, Lead.company,
                Lead.job_title, Lead.phone, Lead.country, Lead.attributes, Lead.stage,
                Lead.fit_score, Lead.engagement_score)
BATCH_SIZE = 2000
_ID = operator.itemgetter(1)  # event rows: (lead_id, id, type, occurred_at, ...)


@dataclass
class RebuildStats:
    version: int = 0
    leads: int = 0
    events: int = 0
    changed: int = 0
    promoted: int = 0


def count_leads() -> int:
    return db.session.scalar(sa.select(sa.func.count(Lead.id))) or 0


def lead_batches(batch_size: int, *where: Any) -> Iterator[list[Any]]:
    """Lead rows (LEAD_COLUMNS) by ascending id, `batch_size` at a time (keyset paging)."""
    after = 0
    while True:
        leads = db.session.execute(
            sa.select(*LEAD_COLUMNS).where(Lead.id > after, *where).order_by(Lead.id)
            .limit(batch_size)
        ).all()
        if not leads:
            return
        yield leads
        after = leads[-1].id


def assess_batch(leads: list[Any], rules: Rules, now: datetime
                 ) -> list[tuple[Any, Assessment, int | None, int]]:
    """(lead row, assessment, newest event id, event count) for a batch of lead rows."""
    low, high = leads[0].id, leads[-1].id
    events = db.session.execute(
        sa.select(Event.lead_id, *event_columns(rules))
        .where(Event.lead_id.between(low, high), Event.is_bot.is_(False))
        .order_by(Event.lead_id, Event.occurred_at, Event.id)
    ).all()
    by_lead = {lead_id: list(rows)
               for lead_id, rows in itertools.groupby(events, key=operator.itemgetter(0))}
    recycled = recycled_since(between=(low, high))  # engagement resets
    results = []
    for lead in leads:
        lead_events = by_lead.get(lead.id, [])
        result = assess(lead, lead_events, rules, now, since=recycled.get(lead.id),
                        decide=lead.stage in ELIGIBLE_STAGES)
        newest = max(map(_ID, lead_events)) if lead_events else None
        results.append((lead, result, newest, len(lead_events)))
    return results


def _store(results: list[tuple[Any, Assessment, int | None, int]], active: ActiveRules,
           now: datetime, stats: RebuildStats) -> None:
    changed = [{"id": lead.id, "fit_score": r.fit.points, "engagement_score": r.engagement.score}
               for lead, r, _, _ in results
               if lead.fit_score != r.fit.points or lead.engagement_score != r.engagement.score]
    if changed:
        db.session.execute(sa.update(Lead), changed)
    ids = [lead.id for lead, *_ in results]
    db.session.execute(sa.delete(LeadScore).where(LeadScore.lead_id.in_(ids)))
    db.session.execute(sa.insert(LeadScore), [
        {"lead_id": lead.id, "ruleset_version": active.version, "fit_points": r.fit.points,
         "fit_grade": r.fit.grade, "engagement": r.engagement.score, "computed_at": now,
         "last_event_id": newest}
        for lead, r, newest, _ in results
    ])
    stats.changed += len(changed)
    qualified = {lead.id: r for lead, r, _, _ in results
                 if r.mql_reason and lead.stage in ELIGIBLE_STAGES}
    if qualified:
        for lead in db.session.scalars(sa.select(Lead).where(Lead.id.in_(list(qualified)))):
            if promote(lead, qualified[lead.id]) is not None:
                stats.promoted += 1


def rebuild(*, batch_size: int = BATCH_SIZE, now: datetime | None = None,
            progress: Callable[[int], None] | None = None) -> RebuildStats:
    """Rescore every lead with the active rules. Commits after each batch."""
    now = now or utcnow()
    active = active_rules()
    stats = RebuildStats(version=active.version)
    for leads in lead_batches(batch_size):
        results = assess_batch(leads, active.rules, now)
        _store(results, active, now, stats)
        db.session.commit()
        outbox.dispatch_committed()  # the stage listeners of any MQL moves
        stats.leads += len(leads)
        stats.events += sum(count for *_, count in results)
        if progress is not None:
            progress(len(leads))
    return stats


def preview(rules: Rules, *, now: datetime | None = None,
            batch_size: int = BATCH_SIZE) -> tuple[int, int]:
    """(leads that would move to MQL, leads scoring may move) if `rules` were active now.
    Recomputes from events like `rebuild`, writing nothing."""
    now = now or utcnow()
    qualify = eligible = 0
    for leads in lead_batches(batch_size, Lead.stage.in_(sorted(ELIGIBLE_STAGES))):
        eligible += len(leads)
        qualify += sum(1 for _, result, _, _ in assess_batch(leads, rules, now)
                       if result.mql_reason)
    return qualify, eligible

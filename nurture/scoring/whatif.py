"""What if the MQL thresholds (or the whole rule set) were different? Replayed over the last N
days of events, with the scorer the rebuild uses (`compute.BatchScorer`, `rebuild`'s readers).

The replay starts every lead from zero N days ago and walks its human events in order: after
each one it asks whether the lead would qualify as an MQL at that moment (fit grade and
engagement at the thresholds, or an instant-MQL activity). A lead counts once, the first time.
Only leads open to scoring at the start of the window (subscriber, lead, recycled) or created
during it are replayed; a move to recycled inside the window resets engagement there, as it
does in production. The current rules are replayed the same way, so the difference is the
rules' alone, and the leads one set would send and the other would not are compared with what
really happened to them: accepted by sales, customers.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.db import any_of, chunks, db, utcnow
from app.jobs import JobTimeout
from app.leads.models import Lead, Stage, StageChange
from app.sales.models import Assignment
from nurture.scoring import rebuild, service
from nurture.scoring.compute import EV_AT, EV_TYPE, BatchScorer, _Event
from nurture.scoring.models import WhatIfRun
from nurture.scoring.rules import Rules, grade_at_least

log = logging.getLogger(__name__)

MAX_DAYS = 365
_LEAD = operator.itemgetter(0)


class Replayer:
    """One rule set's replay: which leads it would have made MQLs in the window."""

    def __init__(self, rules: Rules, now: datetime) -> None:
        self.rules = rules
        self.scorer = BatchScorer(rules, now)
        # The most one event of a type can add (no decay, no cap): an upper bound that lets
        # the replay skip leads, and moments, that cannot reach the line.
        self.most: dict[str, float] = {}
        for rule in rules.engagement:
            if rule.points > 0:
                self.most[rule.event_type] = self.most.get(rule.event_type, 0.0) + rule.points
        self.instant = rules.instant
        self.qualified: set[int] = set()

    def _instant(self, grade: str, event: tuple) -> bool:
        if not self.instant:
            return False
        seen = _Event(event)
        return any((not rule.min_grade or grade_at_least(grade, rule.min_grade))
                   and rule.matches(seen) for rule in self.instant)

    def could(self, events: list[tuple]) -> bool:
        """False when even undecayed, uncapped, these events stay under the line."""
        if self.instant:
            return True
        most = self.most
        return sum(most.get(e[EV_TYPE], 0.0) for e in events) >= self.rules.mql_engagement

    def replay(self, lead: Any, events: list[tuple], resets: list[datetime],
               fit_points: int) -> None:
        rules = self.rules
        grade = rules.grade(fit_points)
        by_grade = grade_at_least(grade, rules.mql_grade)
        if not by_grade and not self.instant:
            return
        last = len(events) - 1
        most, line, bound = self.most, rules.mql_engagement, 0.0
        for index, event in enumerate(events):
            when = event[EV_AT]
            if self._instant(grade, event):
                self.qualified.add(lead.id)
                return
            gain = most.get(event[EV_TYPE], 0.0)
            bound += gain
            if not by_grade or not gain or bound < line:
                continue  # adds nothing, or cannot be over the line yet
            if index < last and events[index + 1][EV_AT] == when:
                continue  # ask after the last event of the same instant
            since = max((r for r in resets if r < when), default=None)
            score = self.scorer.engagement(events[:index + 1],
                                           since.replace(tzinfo=UTC) if since else None,
                                           at=when)
            if score >= rules.mql_engagement:
                self.qualified.add(lead.id)
                return


def _history(lead_ids: list[int], start: datetime) -> tuple[set[int], dict[int, list[datetime]]]:
    """(leads not open to scoring at `start`, recycle moves inside the window per lead)."""
    closed: set[int] = set()
    resets: dict[int, list[datetime]] = {}
    stage_at_start: dict[int, str] = {}
    for part in range(0, len(lead_ids), 1000):
        for lead_id, stage, when in db.session.execute(
                sa.select(StageChange.lead_id, StageChange.to_stage, StageChange.changed_at)
                .where(any_of(StageChange.lead_id, lead_ids[part:part + 1000]))
                .order_by(StageChange.lead_id, StageChange.changed_at, StageChange.id)):
            if when < start:
                stage_at_start[lead_id] = stage
            elif stage == Stage.RECYCLED.value:
                resets.setdefault(lead_id, []).append(when.astimezone(UTC).replace(tzinfo=None))
    for lead_id, stage in stage_at_start.items():
        if stage not in service.ELIGIBLE_STAGES:
            closed.add(lead_id)
    return closed, resets


def replay(rule_sets: list[Rules], days: int, *, now: datetime | None = None,
           batch_size: int = rebuild.BATCH_SIZE) -> tuple[list[set[int]], int, int]:
    """For each rule set, the leads it would have made MQLs over the last `days` days. Also
    returns how many leads could reach the line and were scored, and how many events the
    window held. One pass over the window's events."""
    now = now or utcnow()
    start = now - timedelta(days=days)
    players = [Replayer(rules, now) for rules in rule_sets]
    reading = next((r for r in rule_sets if r.needs_event_data), rule_sets[0])
    # Events of a type no rule counts add nothing and qualify no one: not read at all.
    counted = {rule.event_type for rules in rule_sets
               for rule in (*rules.engagement, *rules.instant)}
    reader = rebuild._event_reader(reading, since=start, types=counted)
    leads_seen = events_seen = 0
    highest = int(db.session.scalar(sa.select(sa.func.max(Lead.id))) or 0)
    try:
        for low in range(1, highest + 1, batch_size):
            events = reader.take(low, low + batch_size - 1)
            if not events:
                continue
            by_lead = {lead_id: list(rows)
                       for lead_id, rows in itertools.groupby(events, key=_LEAD)}
            del events
            events_seen += sum(map(len, by_lead.values()))
            # Only the leads some rule set could send: the profile read, the fit and the
            # history are asked for those alone.
            hope = {i: [p for p in players if p.could(rows)] for i, rows in by_lead.items()}
            hopeful = sorted(i for i, some in hope.items() if some)
            closed, resets = _history(hopeful, start)
            leads = db.session.execute(sa.select(*rebuild.LEAD_COLUMNS).where(
                any_of(Lead.id, [i for i in hopeful if i not in closed]))).all() \
                if hopeful else []
            for lead in leads:
                mine = by_lead[lead.id]
                leads_seen += 1
                fits: dict[int, int] = {}
                for player in hope[lead.id]:
                    key = id(player.rules.fit)
                    if key not in fits:  # thresholds-only what-ifs share the fit rules
                        fits[key] = player.scorer.fit_points(lead)
                    player.replay(lead, mine, resets.get(lead.id, []), fits[key])
            db.session.commit()  # end the read transaction of the batch (SQLite)
    finally:
        reader.close()
    return [p.qualified for p in players], leads_seen, events_seen


def _outcomes(lead_ids: Iterable[int]) -> tuple[set[int], set[int]]:
    """(accepted by sales at some point, became customers) among these leads."""
    accepted: set[int] = set()
    customers: set[int] = set()
    for chunk in chunks(sorted(lead_ids)):
        accepted.update(db.session.scalars(sa.select(Assignment.lead_id).where(
            Assignment.lead_id.in_(chunk), Assignment.outcome == "accepted")))
        customers.update(db.session.scalars(sa.select(StageChange.lead_id).where(
            StageChange.lead_id.in_(chunk), StageChange.to_stage == Stage.CUSTOMER.value)))
    return accepted, customers


def compare(proposed: Rules, days: int, *, now: datetime | None = None) -> dict[str, Any]:
    """The what-if's numbers: proposed against the active rules over the same replay."""
    now = now or utcnow()
    current = service.active_rules()
    (today, then), leads, events = replay([current.rules, proposed], days, now=now)
    dropped, added = today - then, then - today
    accepted, customers = _outcomes(dropped | added)
    actual = db.session.scalar(sa.select(sa.func.count(StageChange.lead_id.distinct())).where(
        StageChange.to_stage == Stage.MQL.value,
        StageChange.changed_at >= now - timedelta(days=days)))
    return {
        "days": days, "since": (now - timedelta(days=days)).isoformat(),
        "current_version": current.version, "current_mqls": len(today),
        "proposed_mqls": len(then), "difference": len(then) - len(today),
        "dropped": len(dropped), "dropped_accepted": len(dropped & accepted),
        "dropped_customers": len(dropped & customers),
        "added": len(added), "added_accepted": len(added & accepted),
        "added_customers": len(added & customers),
        "actual_mqls": int(actual or 0), "leads_replayed": leads, "events_replayed": events,
        "dropped_sample": sorted(dropped)[:20], "added_sample": sorted(added)[:20],
    }


TOO_LONG = ("It took longer than a background job may run. Try fewer days, or ask an "
            "operator to run it when the workers are less busy.")


def run(run_id: int) -> str:
    """Outbox job: carry out a queued what-if and store its numbers. Safe to run twice."""
    row = db.session.get(WhatIfRun, run_id)
    if row is None or row.status in ("done", "failed"):
        return "skipped"
    row.status = "running"
    db.session.commit()
    started = utcnow()
    try:
        proposed = Rules.from_dict(row.definition)
        result = compare(proposed, row.days, now=row.created_at)
    except Exception as exc:  # RQ's timeout too: the run is over either way, and says why
        db.session.rollback()
        error = (TOO_LONG if isinstance(exc, JobTimeout)
                 else f"{type(exc).__name__}: {exc}"[:2000])
        row = db.session.get_one(WhatIfRun, run_id)
        row.status, row.error, row.finished_at = "failed", error, utcnow()
        db.session.commit()
        log.exception("what-if %s failed", run_id)
        return "failed"
    result["seconds"] = round((utcnow() - started).total_seconds(), 1)
    row.status, row.result, row.finished_at = "done", result, utcnow()
    db.session.commit()
    return "done"


def leads_named(ids: list[int]) -> list[Lead]:
    if not ids:
        return []
    return list(db.session.scalars(sa.select(Lead).where(Lead.id.in_(ids)).order_by(Lead.id)))

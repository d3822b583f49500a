"""Calibration on outcomes: the score each lead had when it was handed to sales, and how the
handoffs of each fit grade × engagement band were decided and closed.

`snapshot_pending()` (a refresh step of the reports' rollups) writes, for every move to MQL not
seen yet, the lead's fit and engagement at that moment under the rules active then — the
numbers sales saw — recomputed from the event log with `compute.assess`, like `explain`.
`table()` groups the decided handoffs (accepted / recycled / disqualified) by grade and band
and counts how many were accepted, and how many of those leads became customers or were lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.db import any_of, chunks, db, utcnow
from app.leads.models import Event, Lead, Stage, StageChange
from app.reports.models import ReportLead
from app.sales.models import Assignment
from nurture.scoring import service
from nurture.scoring.compute import assess
from nurture.scoring.models import MqlSnapshot, RuleSet
from nurture.scoring.rules import GRADES, Rules, default_rules

SNAPSHOT_BATCH = 2000
DECIDED = ("accepted", "recycled", "disqualified")


class RuleHistory:
    """Which rule set was active at a time: the newest version saved at or before it."""

    def __init__(self) -> None:
        rows = db.session.execute(sa.select(RuleSet.version, RuleSet.created_at,
                                            RuleSet.definition)
                                  .order_by(RuleSet.created_at, RuleSet.version)).all()
        self._rows = rows
        self._rules: dict[int, Rules] = {}

    def version_at(self, when: datetime) -> int:
        version = 0
        for number, created, _ in self._rows:
            if created <= when:
                version = number
        return version

    def rules(self, version: int) -> Rules:
        if version not in self._rules:
            definition = next((d for n, _, d in self._rows if n == version), None)
            self._rules[version] = Rules.from_dict(definition) if definition else default_rules()
        return self._rules[version]


def ruleset_labels(times: Sequence[datetime]) -> list[str]:
    """The reports' `report_ruleset_at` hook."""
    history = RuleHistory()
    out = []
    for when in times:
        version = history.version_at(when)
        out.append(f"v{version}" if version else "built-in defaults")
    return out


def snapshot_pending(limit: int = SNAPSHOT_BATCH) -> int:
    """Snapshot up to `limit` MQL moves that have none yet. Returns how many. Does not commit."""
    pending = db.session.execute(
        sa.select(StageChange.id, StageChange.lead_id, StageChange.changed_at)
        .outerjoin(MqlSnapshot, MqlSnapshot.stage_change_id == StageChange.id)
        .where(StageChange.to_stage == Stage.MQL.value, MqlSnapshot.stage_change_id.is_(None))
        .order_by(StageChange.id).limit(limit)).all()
    if not pending:
        return 0
    history = RuleHistory()
    now = utcnow()
    versions = {change_id: history.version_at(mql_at) for change_id, _, mql_at in pending}
    # The batch's leads, their human events and their recycle moves: three queries, not three
    # a snapshot. The events' columns are those the most demanding rule set reads.
    ids = sorted({lead_id for _, lead_id, _ in pending})
    leads = {lead.id: lead for lead in db.session.scalars(
        sa.select(Lead).where(any_of(Lead.id, ids)))}
    reading = max((history.rules(v) for v in set(versions.values())),
                  key=lambda rules: rules.needs_event_data)
    events_of: dict[int, list[Any]] = {}
    for row in db.session.execute(
            sa.select(Event.lead_id, *service.event_columns(reading))
            .where(any_of(Event.lead_id, ids), Event.is_bot.is_(False))
            .order_by(Event.lead_id, Event.occurred_at, Event.id)):
        events_of.setdefault(row.lead_id, []).append(row)
    recycles: dict[int, list[datetime]] = {}
    for lead_id, when in db.session.execute(
            sa.select(StageChange.lead_id, StageChange.changed_at)
            .where(any_of(StageChange.lead_id, ids),
                   StageChange.to_stage == Stage.RECYCLED.value)):
        recycles.setdefault(lead_id, []).append(when)
    for change_id, lead_id, mql_at in pending:
        lead = leads[lead_id]
        version = versions[change_id]
        rules = history.rules(version)
        events = [e for e in events_of.get(lead_id, []) if e.occurred_at <= mql_at]
        reset = max((when for when in recycles.get(lead_id, []) if when < mql_at),
                    default=None)
        result = assess(lead, events, rules, mql_at, since=reset, decide=False)
        db.session.add(MqlSnapshot(stage_change_id=change_id, lead_id=lead_id,
                                   ruleset_version=version, fit_points=result.fit.points,
                                   fit_grade=result.fit.grade,
                                   engagement=result.engagement.score, mql_at=mql_at,
                                   computed_at=now))
    db.session.flush()
    return len(pending)


def bands(threshold: float) -> list[tuple[float, float | None, str]]:
    """Engagement bands around the MQL line: below half of it, below it, up to 1.5×, 2×, more."""
    t = threshold or 1.0
    edges = [0.0, t / 2, t, t * 1.5, t * 2]
    out: list[tuple[float, float | None, str]] = []
    for index, low in enumerate(edges):
        high = edges[index + 1] if index + 1 < len(edges) else None
        label = f"{low:g}–{high:g}" if high is not None else f"{low:g}+"
        out.append((low, high, label))
    return out


def band_of(engagement: float, cuts: list[tuple[float, float | None, str]]) -> int:
    for index, (_, high, _) in enumerate(cuts):
        if high is None or engagement < high:
            return index
    return len(cuts) - 1


@dataclass
class Cell:
    decided: int = 0
    accepted: int = 0
    customers: int = 0
    lost: int = 0


@dataclass
class Calibration:
    grades: tuple[str, ...]
    bands: list[tuple[float, float | None, str]]
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)
    mql_grade: str = "C"
    mql_engagement: float = 50.0

    def cell(self, grade: str, band: int) -> Cell:
        return self.cells.get((grade, band), Cell())

    @property
    def total(self) -> Cell:
        out = Cell()
        for c in self.cells.values():
            out.decided += c.decided
            out.accepted += c.accepted
            out.customers += c.customers
            out.lost += c.lost
        return out


def table(rules: Rules | None = None) -> Calibration:
    """Decided handoffs by the grade and engagement they had at the handoff, bands cut around
    `rules`' MQL line (the active rules by default)."""
    rules = rules or service.active_rules().rules
    cuts = bands(rules.mql_engagement)
    result = Calibration(grades=GRADES, bands=cuts, mql_grade=rules.mql_grade,
                         mql_engagement=rules.mql_engagement)
    rows = db.session.execute(
        sa.select(MqlSnapshot.fit_grade, MqlSnapshot.engagement, Assignment.outcome,
                  ReportLead.customer_at, ReportLead.lost_at, Assignment.lead_id,
                  MqlSnapshot.mql_at)
        .join(Assignment, Assignment.stage_change_id == MqlSnapshot.stage_change_id)
        .outerjoin(ReportLead, ReportLead.lead_id == Assignment.lead_id)
        .where(Assignment.outcome.in_(DECIDED))).all()
    # A lead handed over more than once (recycled, then back) closed after one handoff: the
    # last one before its close. The others did not become customers (or lost).
    later = _next_handoffs({row.lead_id for row in rows})
    for grade, engagement, outcome, customer_at, lost_at, lead_id, mql_at in rows:
        cell = result.cells.setdefault((grade, band_of(engagement, cuts)), Cell())
        cell.decided += 1
        cell.accepted += outcome == "accepted"
        upto = later.get((lead_id, mql_at))
        won = _between(customer_at, mql_at, upto)
        cell.customers += won
        cell.lost += _between(lost_at, mql_at, upto) and not won
    return result


def _between(when: datetime | None, start: datetime, end: datetime | None) -> bool:
    return when is not None and when >= start and (end is None or when < end)


def _next_handoffs(lead_ids: set[int]) -> dict[tuple[int, datetime], datetime | None]:
    """For each handoff (lead, MQL time), the MQL time of the lead's next handoff (None: its
    last), decided or not."""
    times: dict[int, list[datetime]] = {}
    for part in chunks(sorted(lead_ids)):
        for lead_id, when in db.session.execute(
                sa.select(Assignment.lead_id, StageChange.changed_at)
                .join(StageChange, StageChange.id == Assignment.stage_change_id)
                .where(Assignment.lead_id.in_(part))):
            times.setdefault(lead_id, []).append(when)
    out: dict[tuple[int, datetime], datetime | None] = {}
    for lead_id, whens in times.items():
        ordered = sorted(set(whens))
        for index, when in enumerate(ordered):
            out[(lead_id, when)] = ordered[index + 1] if index + 1 < len(ordered) else None
    return out

"""Scoring with the database: the active rules, versions, scoring one lead, the MQL move.

Nothing here commits: the caller (a job, the CLI, a view) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads import engagement
from app.leads.models import Event, Lead, Stage, StageChange
from app.leads.service import change_stage
from nurture.scoring.compute import Assessment, assess
from nurture.scoring.models import LeadScore, RuleSet
from nurture.scoring.rules import Rules, default_rules

ACTOR = "scoring"
# Scoring moves a lead to MQL only from these; sales-owned stages are never touched.
ELIGIBLE_STAGES = frozenset({Stage.SUBSCRIBER.value, Stage.LEAD.value, Stage.RECYCLED.value})


@dataclass(frozen=True)
class ActiveRules:
    version: int  # 0: the built-in defaults, before anyone saved a version
    rules: Rules


def active_ruleset() -> RuleSet | None:
    return db.session.scalar(sa.select(RuleSet).where(RuleSet.active.is_(True)))


def active_rules() -> ActiveRules:
    row = active_ruleset()
    if row is None:
        return ActiveRules(0, default_rules())
    return ActiveRules(row.version, Rules.from_dict(row.definition))


def save_version(rules: Rules, *, user_id: int | None, note: str = "") -> RuleSet:
    """Keep `rules` as a new active version; the previous one stays, read-only."""
    latest = db.session.scalar(sa.select(sa.func.max(RuleSet.version))) or 0
    db.session.execute(sa.update(RuleSet).where(RuleSet.active.is_(True)).values(active=False))
    row = RuleSet(version=latest + 1, created_by_id=user_id, note=note.strip(), active=True,
                  definition=rules.to_dict(), created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    return row


def ensure_default_version() -> RuleSet:
    """The first version, from the built-in defaults, on a new install (demo seeding)."""
    row = active_ruleset()
    if row is None:
        row = save_version(default_rules(), user_id=None, note="Default rules")
    return row


class _FastSQLiteTime(sa.types.TypeDecorator):
    """SQLite keeps UTC times as ISO text: `fromisoformat` (C) reads them several times faster
    than the generic DateTime processing, which matters when a rebuild reads a million rows.
    Same values as `UTCDateTime`."""

    impl = sa.String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _occurred_at() -> Any:
    if db.session.get_bind().dialect.name == "sqlite":
        return sa.type_coerce(Event.occurred_at, _FastSQLiteTime()).label("occurred_at")
    return Event.occurred_at


def event_columns(rules: Rules) -> list[Any]:
    """Only what scoring reads; the JSON `data` only when a rule filters on it."""
    columns = [Event.id, Event.type, _occurred_at(), Event.url, Event.campaign_id,
               Event.is_bot]
    if rules.needs_event_data:  # with the email it is about (`Rule.matches` reads them)
        columns += [Event.data, Event.send_id, Event.step_id]
    return columns


def human_events(lead_id: int, rules: Rules) -> Sequence[Any]:
    return db.session.execute(
        sa.select(*event_columns(rules))
        .where(Event.lead_id == lead_id, Event.is_bot.is_(False))
        .order_by(Event.occurred_at, Event.id)
    ).all()


def recycled_since(lead_ids: Iterable[int] | None = None, *,
                   between: tuple[int, int] | None = None) -> dict[int, datetime]:
    """When each of these leads (ids, or an id range) last moved to recycled: their last
    engagement reset. Engagement counts only what they did after it."""
    if between is not None:
        which = StageChange.lead_id.between(*between)
    else:
        ids = list(lead_ids or ())
        if not ids:
            return {}
        which = StageChange.lead_id.in_(ids)
    rows = db.session.execute(
        sa.select(StageChange.lead_id, sa.func.max(StageChange.changed_at))
        .where(which, StageChange.to_stage == Stage.RECYCLED.value)
        .group_by(StageChange.lead_id)
    ).all()
    return {lead_id: when for lead_id, when in rows if when is not None}


def reset_at(lead_id: int) -> datetime | None:
    """The lead's last engagement reset (its last move to recycled), if any."""
    return recycled_since([lead_id]).get(lead_id)


def promote(lead: Lead, assessment: Assessment) -> StageChange | None:
    """Move a qualifying lead to MQL, saying why in numbers. Only from eligible stages, and
    never a lead still awaiting its double opt-in confirmation."""
    if assessment.mql_reason is None or lead.stage not in ELIGIBLE_STAGES \
            or lead.awaiting_confirmation:
        return None
    return change_stage(lead, Stage.MQL, reason=assessment.mql_reason, actor=ACTOR)


def score_lead(lead_id: int, now: datetime | None = None) -> Assessment | None:
    """Recompute one lead from its events, store the score, move it to MQL when it qualifies.
    Idempotent: running it twice changes nothing the second time."""
    now = now or utcnow()
    active = active_rules()
    lead = db.session.get(Lead, lead_id, with_for_update=True)
    if lead is None:
        return None
    events = human_events(lead.id, active.rules)
    result = assess(lead, events, active.rules, now, since=reset_at(lead.id),
                    decide=lead.stage in ELIGIBLE_STAGES)
    if lead.fit_score != result.fit.points:
        lead.fit_score = result.fit.points
    # Engagement as of `now`; readers decay it from here (app.leads.engagement).
    engagement.store(lead, result.engagement.score, now)
    row = db.session.get(LeadScore, lead.id)
    if row is None:
        row = LeadScore(lead_id=lead.id)
        db.session.add(row)
    row.ruleset_version = active.version
    row.fit_points = result.fit.points
    row.fit_grade = result.fit.grade
    row.engagement = result.engagement.score
    row.computed_at = now
    row.last_event_id = max((e.id for e in events), default=None)
    promote(lead, result)
    db.session.flush()
    return result


def rule_names(rules: Rules) -> dict[str, str]:
    """The names of what the rules' filters point at ("form:4" -> "Demo request"), read
    through the pickers (app.pickers), so the lead page and alerts never show a bare id."""
    from app import pickers

    wanted: dict[str, set[int]] = {}
    for rule in (*rules.engagement, *rules.instant):
        for kind, value in rule.named():
            if value.isdigit():
                wanted.setdefault(kind, set()).add(int(value))
    names = {}
    for kind, ids in wanted.items():
        picker = pickers.get(kind)
        if picker is not None:
            names.update({f"{kind}:{i}": label for i, label in picker.lookup(sorted(ids)).items()})
    return names

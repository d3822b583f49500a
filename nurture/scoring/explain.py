"""The "why" of a score: every rule that counted, every event with its decay.

`explain(lead)` recomputes from the event log with the active rules (never from cached
numbers), for the admin lead page, the JSON API and the alert emails of the handoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import render_template
from markupsafe import Markup

from app.db import db, utcnow
from app.leads.models import Event, Lead
from nurture.scoring import service
from nurture.scoring.compute import EngagementResult, FitResult, activity_summary, assess
from nurture.scoring.rules import Rules

if TYPE_CHECKING:
    from app.leads.story import Section


@dataclass(frozen=True)
class Breakdown:
    lead_id: int
    stage: str
    ruleset_version: int
    computed_at: datetime
    fit: FitResult
    engagement: EngagementResult
    rules: Rules
    mql_reason: str | None  # set when the lead qualifies now (whatever its stage)
    machine_events: int  # ignored: bots, proxies, scanners
    engagement_since: datetime | None = None  # the last reset (recycled by sales)
    names: Mapping[str, str] = field(default_factory=dict)  # see service.rule_names

    @property
    def mql_threshold(self) -> str:
        return f"fit ≥ {self.rules.mql_grade} and engagement ≥ {self.rules.mql_engagement:g}"

    @property
    def top_activity(self) -> str:
        return activity_summary(self.engagement, self.rules, names=self.names)

    def summary(self) -> str:
        """One line for an email: "Fit A (30 points), engagement 62: 2 visits to /pricing, …"."""
        text = (f"Fit {self.fit.grade} ({self.fit.points} points), "
                f"engagement {self.engagement.score:.0f}")
        return f"{text}: {self.top_activity}" if self.top_activity else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "stage": self.stage,
            "ruleset_version": self.ruleset_version,
            "computed_at": self.computed_at.isoformat(),
            "summary": self.summary(),
            "mql": {"threshold": {"fit_grade": self.rules.mql_grade,
                                  "engagement": self.rules.mql_engagement},
                    "qualifies": self.mql_reason is not None, "reason": self.mql_reason},
            "fit": {"points": self.fit.points, "grade": self.fit.grade,
                    "items": [{"rule": i.rule, "field": i.field, "value": i.value,
                               "points": i.points} for i in self.fit.items]},
            "engagement": {
                "score": self.engagement.score,
                "half_life_days": self.rules.half_life_days,
                "machine_events_ignored": self.machine_events,
                "counted_since": (self.engagement_since.isoformat()
                                  if self.engagement_since else None),
                "items": [{"rule": i.rule, "event_id": i.event_id, "event_type": i.event_type,
                           "occurred_at": i.occurred_at.isoformat(), "url": i.url,
                           "raw_points": i.raw_points, "counted_points": i.counted_points,
                           "capped": i.capped, "decay": round(i.decay, 4),
                           "points": round(i.points, 2)} for i in self.engagement.items],
            },
        }


def explain(lead: Lead, now: datetime | None = None) -> Breakdown:
    now = now or utcnow()
    active = service.active_rules()
    events = service.human_events(lead.id, active.rules)
    since = service.reset_at(lead.id)
    result = assess(lead, events, active.rules, now, since=since, with_items=True)
    machine = db.session.scalar(
        sa.select(sa.func.count(Event.id)).where(Event.lead_id == lead.id, Event.is_bot.is_(True))
    ) or 0
    names = service.rule_names(active.rules)
    engagement = result.engagement
    if names:  # "form “Demo request”", not "form 4"
        engagement = replace(engagement, items=tuple(
            replace(item, rule=active.rules.engagement[item.rule_index].describe(names))
            for item in engagement.items))
    return Breakdown(lead_id=lead.id, stage=lead.stage, ruleset_version=active.version,
                     computed_at=now, fit=result.fit, engagement=engagement,
                     rules=active.rules, mql_reason=result.mql_reason, machine_events=machine,
                     engagement_since=since, names=names)


def render_panel(lead: Lead) -> Markup:
    """The score section of the admin lead page (autoescaped template)."""
    return Markup(render_template("scoring/_panel.html", b=explain(lead)))


def story_section(lead: Lead) -> Section:
    """The score part of the lead's story (alert emails, exports): fit rules and the strongest
    engagement, with decay, in plain words."""
    from app.leads.story import Section

    breakdown = explain(lead)
    lines = [breakdown.summary()]
    if breakdown.mql_reason:
        lines.append(f"Qualifies because: {breakdown.mql_reason}")
    if breakdown.engagement_since:
        lines.append(f"Engagement counted since it was recycled on "
                     f"{breakdown.engagement_since:%Y-%m-%d}")
    lines += [f"Fit {item.points:+d}: {item.rule}" for item in breakdown.fit.items]
    strongest = sorted(breakdown.engagement.items, key=lambda i: i.points, reverse=True)[:8]
    lines += [f"Engagement {item.points:+.1f} ({item.counted_points:g} × decay {item.decay:.2f}): "
              f"{item.rule}" for item in strongest]
    return Section("Score", lines)

"""Pure scoring: fit from the profile, decaying engagement from events, and the MQL decision.

No database here. A lead is anything with the Lead column names (an ORM Lead or a row); an
event anything with id, type, occurred_at, url, campaign_id (and data, is_bot when present).
Events must come oldest first (ties by id): daily caps count in that order. The incremental
job, the rebuild and `explain` all call these same functions, so they agree to the digit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nurture.scoring.rules import InstantRule, Rules, compiled, grade_at_least

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class FitItem:
    rule_index: int
    rule: str  # described in words
    field: str
    value: Any  # what the lead has
    points: int


@dataclass(frozen=True)
class FitResult:
    points: int
    grade: str
    items: tuple[FitItem, ...] = ()


@dataclass(frozen=True)
class EngagementItem:
    rule_index: int
    rule: str
    event_id: int
    event_type: str
    occurred_at: datetime
    url: str | None
    raw_points: float  # what the rule gives
    counted_points: float  # after the daily cap
    capped: bool
    decay: float  # 0.5 ** (age_days / half_life)
    points: float  # counted_points × decay


@dataclass(frozen=True)
class EngagementResult:
    score: float
    items: tuple[EngagementItem, ...] = ()


@dataclass(frozen=True)
class Assessment:
    fit: FitResult
    engagement: EngagementResult
    mql_reason: str | None  # set when the lead qualifies as an MQL now
    instant: bool = False


def fit(lead: Any, rules: Rules) -> FitResult:
    points = 0
    items = []
    for index, rule in enumerate(rules.fit):
        value = rule.read(lead)
        if rule.test(value):
            points += rule.points
            items.append(FitItem(index, rule.describe(), rule.field, value, rule.points))
    return FitResult(points=points, grade=rules.grade(points), items=tuple(items))


def capped(raw: float, cap: float, used: dict[Any, float], key: Any) -> float:
    """`raw` points cut to what is left of a rule's daily cap (`used[key]` so far, updated)."""
    already = used.get(key, 0.0)
    size = raw if raw >= 0 else -raw
    room = cap - already
    if size > room:
        size = room if room > 0 else 0.0
    used[key] = already + size
    return size if raw >= 0 else -size


def engagement(events: Sequence[Any], rules: Rules, now: datetime, *,
               with_items: bool = True) -> EngagementResult:
    """Sum each matching human event's points (capped per rule per UTC day), decayed by age.

    The hot loop of `flask scores rebuild`: kept flat on purpose."""
    by_type = rules.engagement_by_type()
    half_life_seconds = rules.half_life_days * SECONDS_PER_DAY
    used: dict[tuple[int, Any], float] = {}
    total = 0.0
    items: list[EngagementItem] = []
    for event in events:
        candidates = by_type.get(event.type)
        if candidates is None or event.is_bot:
            continue
        when = event.occurred_at
        for index, rule, filtered in candidates:
            if filtered and not rule.matches(event):
                continue
            raw = rule.points
            counted = raw
            cap = rule.daily_cap
            if cap is not None:
                counted = capped(raw, cap, used, (index, when.date()))
            if counted == 0:
                if with_items:
                    items.append(EngagementItem(index, rule.describe(), event.id, event.type,
                                                when, event.url, raw, 0.0,
                                                True, 1.0, 0.0))
                continue
            age = (now - when).total_seconds()
            decay = 0.5 ** (age / half_life_seconds) if age > 0 else 1.0
            points = counted * decay
            total += points
            if with_items:
                items.append(EngagementItem(index, rule.describe(), event.id, event.type,
                                            when, event.url, raw, counted,
                                            counted != raw, decay, points))
    return EngagementResult(score=round(total, 2), items=tuple(items))


def activity_summary(result: EngagementResult, rules: Rules, limit: int = 3,
                     names: Mapping[str, str] | None = None) -> str:
    """"2 visits to /pricing, 1 form submission": the rules that gave the most points
    (`names`: what the rules' filters point at, see `service.rule_names`)."""
    counts: dict[int, int] = {}
    totals: dict[int, float] = {}
    for item in result.items:
        if item.points > 0:
            counts[item.rule_index] = counts.get(item.rule_index, 0) + 1
            totals[item.rule_index] = totals.get(item.rule_index, 0.0) + item.points
    top = sorted(totals, key=lambda i: (-totals[i], i))[:limit]
    return ", ".join(rules.engagement[i].phrase(counts[i], names) for i in top)


def _instant_match(events: Sequence[Any], rule: InstantRule, now: datetime) -> Any | None:
    since = now - timedelta(days=rule.within_days)
    found = None
    for event in events:
        if event.occurred_at >= since and not event.is_bot and rule.matches(event):
            found = event  # the newest wins: events are oldest first
    return found


def assess(lead: Any, events: Sequence[Any], rules: Rules, now: datetime, *,
           since: datetime | None = None, with_items: bool = False,
           decide: bool = True) -> Assessment:
    """Score a lead and decide whether it qualifies as an MQL now.

    `since`: the lead's last engagement reset (sales recycled it): engagement, and so an MQL,
    counts only activity after it; the older events stay in the log. `decide=False` skips the
    MQL decision (the rebuild, for leads in stages scoring never moves)."""
    fit_result = fit(lead, rules)
    recent = events if since is None else [e for e in events if e.occurred_at > since]
    eng = engagement(recent, rules, now, with_items=with_items)
    if not decide:
        return Assessment(fit=fit_result, engagement=eng, mql_reason=None)
    reason = None
    instant = False
    for rule in rules.instant:
        if rule.min_grade and not grade_at_least(fit_result.grade, rule.min_grade):
            continue
        event = _instant_match(recent, rule, now)
        if event is not None:
            grade = f"fit {fit_result.grade}"
            if rule.min_grade:
                grade += f" ≥ {rule.min_grade}"
            reason = (f"instant MQL: {rule.phrase(1)} on {event.occurred_at:%Y-%m-%d} and "
                      f"{grade}; engagement {eng.score:.0f}")
            instant = True
            break
    if (reason is None and grade_at_least(fit_result.grade, rules.mql_grade)
            and eng.score >= rules.mql_engagement):
        detailed = eng if with_items else engagement(recent, rules, now, with_items=True)
        summary = activity_summary(detailed, rules)
        reason = (f"engagement {eng.score:.0f} ≥ {rules.mql_engagement:g} and "
                  f"fit {fit_result.grade} ≥ {rules.mql_grade}")
        if since is not None:
            reason += f" since recycled on {since:%Y-%m-%d}"
        if summary:
            reason += f"; {summary}"
    return Assessment(fit=fit_result, engagement=eng, mql_reason=reason, instant=instant)


# The rebuild's path: the same rules and the same arithmetic, in the same order, over plain
# tuples and with everything the rules need prepared once. `tests/nurture/scoring/test_compute`
# checks it against `assess` on random activity, and the lifecycle tests against the
# incremental path.

# A rebuild event: (lead_id, id, type, occurred_at, url, campaign_id, data). occurred_at is a
# naive UTC datetime (cheaper to read in bulk than an aware one; the same instants, days and
# ages). data is None unless a rule filters on it (as for `service.event_columns`).
EV_LEAD, EV_ID, EV_TYPE, EV_AT, EV_URL, EV_CAMPAIGN, EV_DATA = range(7)


@dataclass(frozen=True)
class Score:
    """What the rebuild stores: `assess` without the breakdown."""

    fit_points: int
    fit_grade: str
    engagement: float
    mql_reason: str | None = None


class _Event:
    """A rebuild tuple seen as an event (aware occurred_at), for the full `assess`."""

    __slots__ = ("campaign_id", "data", "id", "is_bot", "occurred_at", "type", "url")

    def __init__(self, row: tuple) -> None:
        self.id = row[EV_ID]
        self.type = row[EV_TYPE]
        self.occurred_at = row[EV_AT].replace(tzinfo=UTC)
        self.url = row[EV_URL]
        self.campaign_id = row[EV_CAMPAIGN]
        self.data = row[EV_DATA]
        self.is_bot = False


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


class BatchScorer:
    """`assess` for many leads under one set of rules at one `now`, on rebuild tuples.

    Fit and engagement are computed here with the rules precompiled; only a lead that may
    qualify as an MQL (eligible stage, and fit and engagement at the thresholds, or any
    instant rule configured) goes through the full `assess`, for the reason in words."""

    def __init__(self, rules: Rules, now: datetime) -> None:
        self.rules = rules
        self.now = now
        self._now = _naive_utc(now)
        self._half_life_seconds = rules.half_life_days * SECONDS_PER_DAY
        self._fit = tuple((rule.read, rule.test, rule.points) for rule in rules.fit)
        by_type: dict[str, list[tuple[int, float, float | None, Any]]] = {}
        for index, rule in enumerate(rules.engagement):
            match: Any = None
            if rule.filtered:
                if rule.url_pattern and not (rule.campaign_id or rule.form_id or rule.send_id
                                             or rule.step_id):
                    search = compiled(rule.url_pattern).search
                    match = (lambda url, campaign_id, data, search=search:
                             search(url or "") is not None)
                else:
                    match = rule.matches_fields
            by_type.setdefault(rule.event_type, []).append(
                (index, rule.points, rule.daily_cap, match))
        self._by_type = {k: tuple(v) for k, v in by_type.items()}

    def fit_points(self, lead: Any) -> int:
        points = 0
        for read, test, rule_points in self._fit:
            if test(read(lead)):
                points += rule_points
        return points

    def engagement(self, events: Sequence[tuple], since: datetime | None = None,
                   at: datetime | None = None) -> float:
        """`engagement(...).score` of these tuples (oldest first), counting only events after
        `since` (aware) when given. `at` (naive UTC, like the tuples' times): the score as of
        that moment instead of the scorer's `now` (the what-if replay asks after each event)."""
        by_type = self._by_type
        now = self._now if at is None else at
        half_life_seconds = self._half_life_seconds
        cutoff = None if since is None else _naive_utc(since)
        used: dict[tuple[int, int], float] = {}
        total = 0.0
        for event in events:
            candidates = by_type.get(event[EV_TYPE])
            if candidates is None:
                continue
            when = event[EV_AT]
            if cutoff is not None and not when > cutoff:
                continue
            day = -1
            for index, raw, cap, match in candidates:
                if match is not None and not match(event[EV_URL], event[EV_CAMPAIGN],
                                                   event[EV_DATA]):
                    continue
                counted = raw
                if cap is not None:
                    if day < 0:
                        day = when.toordinal()
                    counted = capped(raw, cap, used, (index, day))
                if counted == 0:
                    continue
                age = (now - when).total_seconds()
                decay = 0.5 ** (age / half_life_seconds) if age > 0 else 1.0
                total += counted * decay
        return round(total, 2)

    def score(self, lead: Any, events: Sequence[tuple], *, since: datetime | None = None,
              decide: bool = True) -> Score:
        rules = self.rules
        points = self.fit_points(lead)
        grade = rules.grade(points)
        score = self.engagement(events, since)
        if decide and (rules.instant or (grade_at_least(grade, rules.mql_grade)
                                         and score >= rules.mql_engagement)):
            full = assess(lead, [_Event(e) for e in events], rules, self.now, since=since,
                          with_items=True)  # one pass: the reason lists the top activity
            return Score(full.fit.points, full.fit.grade, full.engagement.score,
                         full.mql_reason)
        return Score(points, grade, score)

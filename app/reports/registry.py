"""How packages plug into the reports without the core importing them.

- `add_report(app, Report)`: a page under /admin/reports/<slug> (Reports in the nav).
- `add_refresh_step(app, fn)`: other derived data refreshed with the rollups.
- `add_rollup(app, Rollup)`: daily counts a package builds for a day from its own tables; the
  refresh rebuilds a day when events of the rollup's types arrived for it.
- Hooks a feature package may set in `app.extensions` (the reports work without them):
  `report_campaigns` → `() -> list[CampaignInfo]` (names, cost, dates: campaigns),
  `report_credit` → `() -> credit(campaign_id, form_id, utm_campaign) -> campaign_id | None`
  (which campaign an embedded-form submission is credited to: campaigns),
  `report_ruleset_at` → `(times) -> list[str]` (the scoring rule set active at each time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, current_app

# (metric, campaign_id, channel, utm_source, detail, value)
Row = tuple[str, int, str, str, str, int]


@dataclass(frozen=True)
class Rollup:
    name: str
    metrics: tuple[str, ...]
    build: Callable[[date], list[Row]]
    event_types: tuple[str, ...] = ()  # events of these types make their day dirty
    from_facts: bool = False  # rebuilt for the days the lead facts touched
    # Optional: many days in one pass (`rebuild` uses it), where `build` a day at a time would
    # read the same rows again for every day. Must give what `build` gives for each day.
    build_days: Callable[[set[date]], dict[date, list[Row]]] | None = None
    # Optional: brings derived state that `build` reads up to date; refresh and rebuild call it
    # before they build the rollup's days, again while it returns something truthy (more to
    # do). Idempotent; it must not commit (the caller does, between calls).
    prepare: Callable[[], Any] | None = None


@dataclass(frozen=True)
class Report:
    slug: str
    title: str
    build: Callable[[Any], Any]  # (Filters) -> reports.tables.Result
    order: int = 50
    summary: str = ""
    filters: tuple[str, ...] = ("range", "campaign", "mode")


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    cost: Decimal = Decimal(0)
    currency: str = "USD"
    starts_on: date | None = None
    ends_on: date | None = None


@dataclass
class _Hooks:
    reports: list[Report] = field(default_factory=list)
    rollups: list[Rollup] = field(default_factory=list)
    steps: list[Callable[[], Any]] = field(default_factory=list)


def _hooks(app: Flask) -> _Hooks:
    return app.extensions.setdefault("reports", _Hooks())


def add_report(app: Flask, report: Report) -> None:
    hooks = _hooks(app)
    hooks.reports = sorted([r for r in hooks.reports if r.slug != report.slug] + [report],
                           key=lambda r: (r.order, r.title))


def add_rollup(app: Flask, rollup: Rollup) -> None:
    hooks = _hooks(app)
    if all(r.name != rollup.name for r in hooks.rollups):
        hooks.rollups.append(rollup)


def add_refresh_step(app: Flask, step: Callable[[], Any]) -> None:
    """Run `step()` in every rollup refresh and rebuild (after the facts and days): derived
    data of a package's own, kept current the same way. It must be idempotent and not commit
    half a unit of work."""
    hooks = _hooks(app)
    if step not in hooks.steps:
        hooks.steps.append(step)


def refresh_steps() -> list[Callable[[], Any]]:
    return list(_hooks(current_app).steps)


def reports() -> list[Report]:
    return list(_hooks(current_app).reports)


def report(slug: str) -> Report | None:
    return next((r for r in reports() if r.slug == slug), None)


def rollups() -> list[Rollup]:
    return list(_hooks(current_app).rollups)


def campaigns() -> list[CampaignInfo]:
    provider = current_app.extensions.get("report_campaigns")
    return list(provider()) if provider else []


def campaign_names() -> dict[int, str]:
    names = {c.id: c.name for c in campaigns()}
    names[0] = "No campaign"
    return names


def credit_function() -> Callable[[int | None, Any, str], int | None]:
    factory = current_app.extensions.get("report_credit")
    if factory is None:
        return lambda campaign_id, form_id, utm_campaign: campaign_id
    return factory()


def ruleset_labels(times: Sequence[datetime]) -> list[str]:
    provider = current_app.extensions.get("report_ruleset_at")
    if provider is None:
        return ["—"] * len(times)
    return list(provider(times))

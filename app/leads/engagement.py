"""Engagement as of now. The stored `engagement_score` is the value when it was computed
(`engagement_at`); it halves every half-life after that. Every reader (the list, the export,
the lead page, alerts, the CRM payload, sequence branches) asks `current(lead)`, never the
stored number, so a lead that went quiet cools everywhere at once.

Ordering and filtering in SQL use `engagement_key` = log2(score) + days(at) / half-life: the
decayed values of two leads compare at any moment as their keys do, so one index serves
"sort by engagement" and "engagement ≥ X" forever, without rewriting rows as time passes.
Scores ≤ 0 get `NO_KEY` (they sort last; they only move toward zero).

The half-life belongs to the scoring rules (nurture): scoring registers it with
`set_half_life`; without it, the default applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context

from app.db import utcnow

DEFAULT_HALF_LIFE_DAYS = 30.0
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
NO_KEY = -1.0e9
SECONDS_PER_DAY = 86400.0


def set_half_life(app: Flask, provider: Callable[[], float]) -> None:
    app.extensions["engagement_half_life"] = provider


def half_life_days() -> float:
    provider = current_app.extensions.get("engagement_half_life") if has_app_context() else None
    return float(provider()) if provider else DEFAULT_HALF_LIFE_DAYS


def _days(at: datetime) -> float:
    return (at - EPOCH).total_seconds() / SECONDS_PER_DAY


def key_for(score: float, at: datetime, half_life: float | None = None) -> float:
    if score <= 0:
        return NO_KEY
    return math.log2(score) + _days(at) / (half_life or half_life_days())


def decayed(score: float, at: datetime | None, now: datetime | None = None,
            half_life: float | None = None) -> float:
    """`score` computed at `at`, as of `now`."""
    if at is None or score == 0:
        return score
    age = ((now or utcnow()) - at).total_seconds() / SECONDS_PER_DAY
    return score * 0.5 ** (age / (half_life or half_life_days())) if age > 0 else score


def current(lead: Any, now: datetime | None = None, half_life: float | None = None) -> float:
    """The lead's engagement as of `now` (anything with engagement_score and engagement_at).
    Many leads at once: pass `half_life_days()` read once (reading it may take a query)."""
    return decayed(lead.engagement_score, getattr(lead, "engagement_at", None), now, half_life)


def store(lead: Any, score: float, at: datetime | None = None) -> None:
    """Set a lead's engagement as computed at `at` (now by default). Does not commit."""
    at = at or utcnow()
    lead.engagement_score = score
    lead.engagement_at = at
    lead.engagement_key = key_for(score, at)


def values(score: float, at: datetime, half_life: float | None = None) -> dict[str, Any]:
    """The three columns for a bulk UPDATE."""
    return {"engagement_score": score, "engagement_at": at,
            "engagement_key": key_for(score, at, half_life)}


def sql_at_least(column_key: Any, minimum: float, now: datetime | None = None) -> Any:
    """SQL: the decayed engagement is ≥ `minimum` now."""
    if minimum <= 0:
        return sa.true()
    return column_key >= math.log2(minimum) + _days(now or utcnow()) / half_life_days()


def sql_below(column_key: Any, maximum: float, now: datetime | None = None) -> Any:
    """SQL: the decayed engagement is < `maximum` now (scores ≤ 0 included)."""
    if maximum <= 0:
        return column_key == NO_KEY
    return column_key < math.log2(maximum) + _days(now or utcnow()) / half_life_days()


def sql_current(column_key: Any, now: datetime | None = None) -> Any:
    """SQL: the decayed engagement now, from the key (0 for scores ≤ 0)."""
    exponent = column_key - _days(now or utcnow()) / half_life_days()
    # max(…, -1000): PostgreSQL raises on a float underflow instead of giving 0.
    floor = sa.case((exponent < -1000.0, -1000.0), else_=exponent)
    return sa.case((column_key == NO_KEY, 0.0), else_=sa.func.pow(2.0, floor))

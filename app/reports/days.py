"""UTC days: the unit of every rollup. A day's rows cover [00:00, 24:00) UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from app.db import db


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


def bounds(day: date) -> tuple[datetime, datetime]:
    start = start_of(day)
    return start, start + timedelta(days=1)


def day_sql(column: Any) -> Any:
    """The UTC day of a time column, in SQL (a date on PostgreSQL, ISO text on SQLite)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def each_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]

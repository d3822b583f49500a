"""Working time in the workspace's time zone: which day it is, and working hours elapsed."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.sales.models import WORK_WEEK, SalesSettings


def zone(settings: SalesSettings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(moment: datetime, settings: SalesSettings) -> datetime:
    return moment.astimezone(zone(settings))


def working_hours_between(start: datetime, end: datetime, settings: SalesSettings) -> float:
    """Hours of [start, end) that fall Mon–Fri between the working hours, local time."""
    if end <= start:
        return 0.0
    tz = zone(settings)
    start_l, end_l = start.astimezone(tz), end.astimezone(tz)
    total = 0.0
    day = start_l.date()
    while day <= end_l.date():
        if day.weekday() in WORK_WEEK:
            open_ = datetime.combine(day, time(settings.work_start_hour), tz)
            close = datetime.combine(day, time(settings.work_end_hour), tz)
            lo, hi = max(open_, start_l), min(close, end_l)
            if hi > lo:
                total += (hi - lo).total_seconds() / 3600
        day += timedelta(days=1)
    return total

"""Time in the lead's world: their time zone, the sequence's send window, and waits."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The usual zone of a country, for leads who told us their country but not their time zone.
# Countries spanning several zones get their most populous one; add more as customers need.
COUNTRY_ZONES = {
    "GB": "Europe/London", "IE": "Europe/Dublin", "US": "America/New_York",
    "CA": "America/Toronto", "MX": "America/Mexico_City", "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires", "ES": "Europe/Madrid", "PT": "Europe/Lisbon",
    "FR": "Europe/Paris", "DE": "Europe/Berlin", "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels", "IT": "Europe/Rome", "CH": "Europe/Zurich", "AT": "Europe/Vienna",
    "SE": "Europe/Stockholm", "NO": "Europe/Oslo", "DK": "Europe/Copenhagen",
    "FI": "Europe/Helsinki", "PL": "Europe/Warsaw", "GR": "Europe/Athens",
    "TR": "Europe/Istanbul", "IN": "Asia/Kolkata", "CN": "Asia/Shanghai", "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul", "SG": "Asia/Singapore", "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland", "ZA": "Africa/Johannesburg", "NG": "Africa/Lagos",
    "AE": "Asia/Dubai", "IL": "Asia/Jerusalem",
}

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NEXT_WEEKDAY = re.compile(r"^\s*next\s+([a-z]+)\s+(\d{1,2}):(\d{2})\s*$", re.IGNORECASE)


def zone(name: str | None) -> ZoneInfo | None:
    if not name or not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def lead_zone(lead, *defaults: str | None) -> ZoneInfo:
    """The lead's own `timezone` attribute, else their country's zone, else the first valid
    of `defaults` (e.g. the campaign's, then the sequence's), else UTC."""
    attributes = lead.attributes or {}
    found = zone(attributes.get("timezone")) or zone(COUNTRY_ZONES.get((lead.country or "").upper()))
    for name in defaults:
        found = found or zone(name)
    return found or ZoneInfo("UTC")


def in_window(moment: datetime, tz: ZoneInfo, days: list[int], start: int, end: int) -> bool:
    local = moment.astimezone(tz)
    return local.weekday() in days and start <= local.hour < end


def next_opening(moment: datetime, tz: ZoneInfo, days: list[int], start: int,
                 end: int) -> datetime | None:
    """The first instant at or after `moment` inside the window (UTC), None if it never opens."""
    if not days or start >= end:
        return None
    if in_window(moment, tz, days, start, end):
        return moment
    local = moment.astimezone(tz)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() not in days:
            continue
        opening = datetime(day.year, day.month, day.day, start, tzinfo=tz)
        if opening > local:
            return opening.astimezone(UTC)
    return None


def parse_wait_until(text: str) -> tuple[int, int, int] | None:
    """'next tuesday 09:30' -> (weekday, hour, minute); None when it does not parse."""
    match = _NEXT_WEEKDAY.match(text or "")
    if not match:
        return None
    name, hour, minute = match.group(1).lower(), int(match.group(2)), int(match.group(3))
    if name not in WEEKDAYS or hour > 23 or minute > 59:
        return None
    return WEEKDAYS.index(name), hour, minute


def wait_until(moment: datetime, tz: ZoneInfo, text: str) -> datetime | None:
    """The next occurrence of 'next <weekday> <HH:MM>' after `moment`, in the lead's zone."""
    parsed = parse_wait_until(text)
    if parsed is None:
        return None
    weekday, hour, minute = parsed
    local = moment.astimezone(tz)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() != weekday:
            continue
        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
        if candidate > local:
            return candidate.astimezone(UTC)
    return None

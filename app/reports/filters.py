"""The filters every report shares: a date range, a campaign, cohort or moved, and a grain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import current_app

from app.db import utcnow

MODES = {"cohort": "Leads created in the range (cohort)",
         "moved": "Moves made in the range"}
GRAINS = ("day", "week", "month")
DEFAULT_DAYS = 30


@dataclass
class Filters:
    since: date
    until: date
    campaign_id: int | None = None
    mode: str = "cohort"
    grain: str = "week"
    errors: list[str] = field(default_factory=list)

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query string of these filters (for links: CSV, other reports)."""
        values: dict[str, Any] = {"since": self.since.isoformat(),
                                  "until": self.until.isoformat(), "mode": self.mode,
                                  "grain": self.grain}
        if self.campaign_id is not None:
            values["campaign"] = self.campaign_id
        values.update(changes)
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_args(cls, args: Any) -> Filters:
        today = utcnow().date()
        errors: list[str] = []
        max_days = int(current_app.config["REPORTS_MAX_DAYS"])

        def day(name: str, default: date) -> date:
            raw = (args.get(name) or "").strip()
            if not raw:
                return default
            try:
                return date.fromisoformat(raw)
            except ValueError:
                errors.append(f"“{raw[:20]}” is not a date (use YYYY-MM-DD); "
                              f"showing {default.isoformat()} instead.")
                return default

        until = day("until", today)
        since = day("since", until - timedelta(days=DEFAULT_DAYS - 1))
        if since > until:
            errors.append("The range starts after it ends; showing the 30 days before the end.")
            since = until - timedelta(days=DEFAULT_DAYS - 1)
        if (until - since).days + 1 > max_days:
            errors.append(f"A report covers at most {max_days} days; showing the last "
                          f"{max_days} days of the range.")
            since = until - timedelta(days=max_days - 1)
        campaign_id = None
        raw_campaign = (args.get("campaign") or "").strip()
        if raw_campaign:
            try:
                campaign_id = int(raw_campaign)
            except ValueError:
                errors.append("Unknown campaign; showing every campaign.")
        mode = args.get("mode") if args.get("mode") in MODES else "cohort"
        grain = args.get("grain") if args.get("grain") in GRAINS else "week"
        return cls(since=since, until=until, campaign_id=campaign_id, mode=mode, grain=grain,
                   errors=errors)


def period_start(day: date, grain: str) -> date:
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def periods(since: date, until: date, grain: str) -> list[date]:
    out: list[date] = []
    day = period_start(since, grain)
    while day <= until:
        out.append(day)
        if grain == "day":
            day += timedelta(days=1)
        elif grain == "week":
            day += timedelta(days=7)
        else:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


def period_label(start: date, grain: str) -> str:
    if grain == "month":
        return start.strftime("%Y-%m")
    return start.isoformat()


def grain_heading(grain: str) -> str:
    return {"day": "Day", "week": "Week of", "month": "Month"}[grain]

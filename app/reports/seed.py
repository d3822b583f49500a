"""Demo data: the rollups of everything the other seeders made, so every report shows it."""

from __future__ import annotations

from flask import current_app

from app.reports.rollup import rebuild


def seed_reports() -> list[str]:
    stats = rebuild()
    base = current_app.config["BASE_URL"]
    return [(f"Reports: {base}/admin/reports/ (rolled up {stats.leads} leads, "
            f"{stats.days} days)")]

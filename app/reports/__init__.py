"""Reports: the funnel, leads and MQLs over time, cost per lead, speed (and, from the feature
packages, email and scores), read from daily rollups kept current by a periodic job.

Part of the core: it imports nothing from forms/, campaigns/ or nurture/. Feature packages add
reports, rollups and hooks through `app.reports.registry`.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

DEFAULTS = {
    "REPORTS_ROLLUP_INTERVAL": 60,  # seconds between rollup refreshes
    "REPORTS_MAX_DAYS": 731,  # the longest range a report covers
}

reports_cli = AppGroup("reports", help="Report commands.")


@reports_cli.command("rebuild-rollups")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Rebuild only the days from this date on (earlier days keep their rows).")
def rebuild_rollups_command(since) -> None:
    """Recompute the reports' lead facts and every daily rollup from the source tables."""
    from app.reports.rollup import rebuild

    stats = rebuild(progress=lambda text: click.echo(f"  {text}", err=True),
                    since=since.date() if since else None)
    click.echo(f"Rebuilt the facts of {stats.leads} leads and {stats.days} rollup days "
               f"({stats.rows} rows).")


def init_app(app: Flask) -> None:
    from app import templating
    from app.reports import models as _models  # noqa: F401  this package's tables
    from app.reports import views
    from app.reports.builtin import CORE_REPORTS
    from app.reports.registry import add_report, add_rollup
    from app.reports.rollup import CORE_ROLLUPS
    from app.reports.seed import seed_reports
    from app.schedule import add_periodic
    from app.seed import add_seeder

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(views.bp)
    templating.add_nav(app, "reports.index", "Reports", "marketer", "sales")
    for report in CORE_REPORTS:
        add_report(app, report)
    for rollup in CORE_ROLLUPS:
        add_rollup(app, rollup)
    add_periodic(app, "app.reports.rollup.refresh_job", int(app.config["REPORTS_ROLLUP_INTERVAL"]))
    add_seeder(app, seed_reports)
    app.cli.add_command(reports_cli)

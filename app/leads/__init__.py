"""The lead core: leads, their activity log and their lifecycle history."""

from __future__ import annotations

from flask import Flask

TASK_REMINDER_INTERVAL = 60  # seconds between looks for tasks that fell due


def init_app(app: Flask) -> None:
    """The lead workspace's periodic work and demo data."""
    from app.body_limits import add_body_limit
    from app.leads import bulk, imports
    from app.leads.seed import seed_workspace
    from app.schedule import add_periodic
    from app.seed import add_seeder

    app.config.setdefault("TASK_REMINDER_INTERVAL", TASK_REMINDER_INTERVAL)
    app.config.setdefault("LEAD_ACTIVITY_INTERVAL", 30)
    add_periodic(app, "app.leads.reminders.due", int(app.config["TASK_REMINDER_INTERVAL"]))
    add_periodic(app, "app.leads.activity.run", int(app.config["LEAD_ACTIVITY_INTERVAL"]))
    add_seeder(app, seed_workspace)
    bulk.init_app(app)
    add_body_limit(app, "leads.import_upload", lambda: imports.MAX_BYTES)
    from app.leads.import_cli import import_command
    from app.sales.export import leads_cli  # the `flask leads …` group

    leads_cli.add_command(import_command)

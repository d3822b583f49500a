"""Outgoing webhooks: subscriptions per event type, Standard Webhooks signatures with a
rotatable secret per endpoint, delivery by RQ with back-off for about 24 hours, a delivery log
with replay, SSRF-checked targets (`app.netguard`).

Part of the core: it hears about stage changes through `add_stage_listener`, about the API's
writes directly, and about the rest through the event log (`listeners.bridge`).
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "WEBHOOK_TIMEOUT": 10,
    # Seconds before each retry: 11 tries over about 24 hours (5 s … 8 h apart).
    "WEBHOOK_RETRY_SCHEDULE": (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800),
    "WEBHOOK_SWEEP_INTERVAL": 5,
}


def init_app(app: Flask) -> None:
    from app import templating
    from app.leads.service import add_stage_listener
    from app.schedule import add_periodic
    from app.seed import add_seeder
    from app.webhooks import admin
    from app.webhooks import models as _models  # noqa: F401  this package's tables
    from app.webhooks.seed import seed_webhooks

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(admin.bp)
    add_stage_listener(app, "app.webhooks.listeners.on_stage_change")
    interval = int(app.config["WEBHOOK_SWEEP_INTERVAL"])
    add_periodic(app, "app.webhooks.delivery.sweep", interval)
    add_periodic(app, "app.webhooks.listeners.bridge_job", interval)
    add_seeder(app, seed_webhooks)
    templating.add_nav(app, "webhooks.index", "Webhooks", "admin")

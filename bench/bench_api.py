"""REST API: events ingest rate and `GET /api/v1/leads` latency, on PostgreSQL.

BENCH_API_LEADS (1,000,000) leads are bulk-loaded; the real app runs under gunicorn (2
workers × 4 threads; the per-token rate limit raised through the instance's kindling.cfg so
the benchmark measures the API, not the limiter). Ingest: BENCH_API_BATCHES (40) batches of
1,000 custom events, 4 clients at a time; events/s = events stored ÷ wall time (each request
waits for its commit). Lists: BENCH_API_GETS (400) requests, one at a time, over the first
page, a page deep in the keyset, a stage filter and an updated_since filter; p95 of their
latency. A second row does the same over the leads list's other filters and sorts (`q`, the
start of an email, company or name; owner; grade; suppressed; created_since; fit and
activity order), and the bare Flask baseline of the same run (the figures are absolute targets from
issue 13, so a loaded machine shows in that row too): ≥ 5,000 events/s, p95 < 100 ms at
1,000,000 leads.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import urllib3

import bench.lib
from bench.lib import Context, Row, gunicorn_server
from bench.scratch import env_int, load_leads, scratch_db

DB_NAME = "kindling_bench_api"
REDIS_DB = 13
EVENTS_TARGET = 5_000.0
P95_TARGET_MS = 100.0


def _token(scratch) -> str:
    app = scratch.app()
    with app.app_context():
        from app.api import tokens
        from app.auth.models import create_user
        from app.db import db

        user = create_user("bench@example.com", "bench-password-123", "marketer")
        _row, token = tokens.issue(user, "bench", "write")
        db.session.commit()
        db.engine.dispose()
    return token


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _p95_row(http, url: str, headers: dict[str, str], paths: list[str], requests: int,
             figure: str) -> Row:
    """`requests` GETs, one at a time, over `paths` in turn; their p95 against the target."""
    latencies: list[float] = []
    for n in range(requests):
        started = time.perf_counter()
        reply = http.request("GET", url + paths[n % len(paths)], headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if reply.status != 200:
            raise RuntimeError(f"GET answered {reply.status}: {reply.data[:300]!r}")
    p95 = _percentile(latencies, 0.95)
    return Row(figure, f"< {P95_TARGET_MS:.0f} ms",
               f"p95 {p95:.1f} ms, p50 {_percentile(latencies, 0.5):.1f} ms",
               p95 / P95_TARGET_MS, p95 < P95_TARGET_MS)


def run(ctx: Context) -> list[Row]:
    count = env_int("BENCH_API_LEADS", 1_000_000)
    batches = env_int("BENCH_API_BATCHES", 40)
    gets = env_int("BENCH_API_GETS", 400)
    rows: list[Row] = []
    # The whole app under gunicorn on a busy 2-core machine can take longer than the default.
    bench.lib.STARTUP_TIMEOUT_S = max(bench.lib.STARTUP_TIMEOUT_S, 90)
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB) as scratch:
        print(f"  api: loading {count:,} leads ...", file=sys.stderr, flush=True)
        load_leads(scratch, count)
        scratch.execute("UPDATE leads SET stage = 'mql' WHERE id % 50 = 0", "ANALYZE leads")
        (scratch.instance / "kindling.cfg").write_text('API_RATE_LIMIT = "1000000 per minute"\n')
        token = _token(scratch)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        http = urllib3.PoolManager(maxsize=8, retries=False)
        with gunicorn_server("wsgi:app", scratch.env, workers=2, threads=4,
                             ready_path="/api/v1/openapi.json", log_dir=ctx.tmp) as url:

            def send(batch: int) -> int:
                body = json.dumps({"events": [
                    {"id": f"b{batch}-{i}-{uuid.uuid4().hex[:6]}", "type": "webinar_attended",
                     "lead_id": 1 + (batch * 1000 + i) * 7919 % count,
                     "data": {"webinar": "Q4 launch", "minutes": i % 60}}
                    for i in range(1000)]})
                reply = http.request("POST", url + "/api/v1/events", body=body,
                                     headers=headers, timeout=120)
                if reply.status != 200:
                    raise RuntimeError(f"ingest answered {reply.status}: {reply.data[:300]!r}")
                return int(json.loads(reply.data)["created"])

            send(-1)  # warm up both workers' connections and imports
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=4) as pool:
                created = sum(pool.map(send, range(batches)))
            seconds = time.perf_counter() - started
            rate = created / seconds
            rows.append(Row(f"API events ingest: {created:,} events in batches of 1,000, "
                            "4 clients (PostgreSQL)", f"≥ {EVENTS_TARGET:,.0f} events/s",
                            f"{rate:,.0f} events/s ({seconds:.1f} s)", rate / EVENTS_TARGET,
                            rate >= EVENTS_TARGET and created == batches * 1000))

            paths = ["/api/v1/leads", "/api/v1/leads?stage=mql",
                     "/api/v1/leads?updated_since=2000-01-01T00:00:00Z&limit=100"]
            first = json.loads(http.request("GET", url + "/api/v1/leads?limit=200",
                                            headers=headers).data)
            paths.append("/api/v1/leads?cursor=" + first["next_cursor"])
            rows.append(_p95_row(http, url, headers, paths, gets,
                                 f"GET /api/v1/leads p95 at {count:,} leads (first page, stage, "
                                 "updated_since, a keyset page)"))
            # The leads list's other filters and sorts (each served by an index at 1M).
            others = ["/api/v1/leads?q=company%2017", "/api/v1/leads?q=lead12345",
                      "/api/v1/leads?owner=none", "/api/v1/leads?owner=bench@example.com",
                      "/api/v1/leads?grade=A", "/api/v1/leads?suppressed=yes",
                      "/api/v1/leads?created_since=2000-01-01T00:00:00Z",
                      "/api/v1/leads?sort=fit&dir=desc", "/api/v1/leads?stage=mql&stage=sql",
                      "/api/v1/leads?sort=activity&dir=desc&eng_min=1"]
            rows.append(_p95_row(http, url, headers, others, max(len(others), gets // 4),
                                 f"GET /api/v1/leads p95 at {count:,} leads, the other filters "
                                 "(q prefix, owner, grade, suppressed, created_since, sorts)"))
    # The bare Flask app of this run, to read the figures above against the machine's state
    # (another load on the machine slows both alike).
    base = ctx.baseline_for("/")
    rows.append(Row("  reference: bare Flask baseline GET / (this run)", "—", base.summary(),
                    None, None))
    return rows

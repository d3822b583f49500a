"""Capture: landing-page GET, revalidation, form-submit throughput, the intake processor's
catch-up and freshness, under gunicorn on PostgreSQL.

Each HTTP figure is a ratio against the bare Flask baseline served by the same gunicorn (2
workers × 4 threads with production's settings, `app.gunicorn_conf`) in the same run, after a one-second warm-up. Every submit uses a new email, so each request writes one intake row
(no duplicate short-cut is measured). No worker runs during the burst: afterwards
BENCH_INTAKE_BACKLOG (20,000) more pending rows are written as the submit path writes them, and
one intake processor (one process, `forms.processor.drain`) turns the whole backlog into leads,
submissions, events and outbox rows (enqueued on Redis too); its rows/s is the catch-up figure.
Freshness runs on a fresh database with BENCH_FRESH_WORKERS (2) RQ workers: a steady 50
submits/s for BENCH_FRESH_SECONDS (30), each timed from the moment its POST was sent until its
lead, and then its first nurture email's ledger row, became visible in PostgreSQL (polled every
0.1 s). After each run: accepted submits = leads + quarantined submissions.
An informational row splits the machine's CPU per request by program (the app's gunicorn
workers, PostgreSQL, Redis, wrk; `bench.lib.cpu_by_program`) for the submit and the bare POST:
its ratio is how many bare posts' worth of CPU one submit costs, which bounds the submit's ratio
on a machine whose cores are all busy.
BENCH_CAPTURE_HTTP_ONLY=1 stops after the submit row (landing, revalidation and submit only),
for iterating on the request path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote

from bench.intake_load import Watcher, drain_timed, percentile, seed_backlog, steady_submits
from bench.kindling_server import count, kindling
from bench.lib import REPO_ROOT, Context, Row, stop_processes, wrk

# Both apps run as production does (README: gunicorn workers with 4 threads each, and
# production's gunicorn settings, app.gunicorn_conf: a socket per worker, the access log): a
# sync worker without threads holds every queued request behind one durable commit at a time.
THREADS = 4
CONFIG = "python:app.gunicorn_conf"
SUBMIT_TARGET = 0.30
SUBMIT_P99_MS = 50.0
PAGE_TARGET = 0.80
CATCH_UP_ROWS_PER_S = 1000
BACKLOG_ROWS = int(os.environ.get("BENCH_INTAKE_BACKLOG", "20000"))  # seeded pending rows
FRESH_RATE = 50.0  # submits/s
FRESH_SECONDS = float(os.environ.get("BENCH_FRESH_SECONDS", "30"))
FRESH_WORKERS = int(os.environ.get("BENCH_FRESH_WORKERS", "2"))
# BENCH_CAPTURE_HTTP_ONLY=1: only the landing, revalidation and submit rows (while tuning them).
HTTP_ONLY = os.environ.get("BENCH_CAPTURE_HTTP_ONLY", "") not in ("", "0")
FRESH_SETTLE_SECONDS = 60.0  # after the last submit, for the stragglers
FRESH_LEAD_P99_S = 1.0
FRESH_EMAIL_P99_S = 2.0

# The limiter stays on (its Redis round trip is part of the cost) with a limit no load test hits.
# The sweep is slowed down and no worker runs: the burst leaves a backlog for the catch-up row.
SETTINGS = 'FORM_RATE_LIMIT = "100000000 per minute"\n'


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or \
        re.search(rf'value="([^"]*)"[^>]*name="{name}"', html)
    if not match:
        raise RuntimeError(f"no {name} field on the landing page")
    return match.group(1)


def _page(base: str) -> tuple[str, str]:
    """(render timestamp, ETag) from one real page view: no cookie, no token."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(base + "/p/demo", timeout=10) as response:
        return _field(response.read().decode(), "ts"), response.headers["ETag"]


def _submit_script(ts: str) -> str:
    fixed = (f"ts={quote(ts)}&first_name=Bench&company=Load+Test"
             "&job_title=Director&country=GB&consent=y&website=&tz=Europe%2FLondon")
    return f"""
local thread_id = 0
local counter = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
request = function()
  counter = counter + 1
  local body = "email=bench-" .. tid .. "-" .. counter .. "%40example.com&{fixed}"
  return wrk.format("POST", "/p/demo", {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Sec-Fetch-Site"] = "same-origin",
  }}, body)
end
"""


def _machine_ms(result) -> float:
    """All the machine's CPU per request while wrk ran (the ratio: how many bare posts one
    submit costs)."""
    return sum(result.cpu_ms.values())


def _revalidate_script(etag: str) -> str:
    return f"""
request = function()
  return wrk.format("GET", "/p/demo", {{["If-None-Match"] = '{etag}'}})
end
"""


def run(ctx: Context) -> list[Row]:
    base_get = ctx.baseline_for("/", threads=THREADS, config=CONFIG)
    base_post = ctx.baseline_for("/submit", script=_post_baseline_script(), threads=THREADS,
                                 config=CONFIG)
    rows: list[Row] = []
    with kindling(ctx.tmp, SETTINGS + "INTAKE_SWEEP_SECONDS = 3600\n",
                  threads=THREADS, config=CONFIG) as (base, env):
        # Each worker's first render and database connection are not what a visitor meets.
        wrk(base + "/p/demo", 1, ctx.connections, script_dir=ctx.tmp)
        page = ctx.wrk(base + "/p/demo")
        ratio = page.requests_per_s / base_get.requests_per_s
        rows.append(Row("landing page GET /p/demo (PostgreSQL)", f"≥ {PAGE_TARGET:.2f}×",
                        page.summary(), ratio, ratio >= PAGE_TARGET and not page.non_2xx_3xx))
        ts, etag = _page(base)
        again = ctx.wrk(base, script=_revalidate_script(etag))
        rows.append(Row("revalidation GET /p/demo If-None-Match → 304", "—",
                        again.summary(), again.requests_per_s / base_get.requests_per_s, None))

        time.sleep(2.1)  # the form's minimum time to submit
        submit = ctx.wrk(base, script=_submit_script(ts))
        received = count(env, "SELECT count(*) FROM intake")
        ratio = submit.requests_per_s / base_post.requests_per_s
        ok = ratio >= SUBMIT_TARGET and submit.p99_ms < SUBMIT_P99_MS and not submit.non_2xx_3xx
        rows.append(Row(f"form submit POST /p/demo, p99 < {SUBMIT_P99_MS:.0f} ms (PostgreSQL)",
                        f"≥ {SUBMIT_TARGET:.2f}×",
                        f"{submit.summary()}; {received:,} intake rows", ratio, ok))
        rows.append(Row("CPU per request, ms by program (whole machine): submit POST | bare "
                        "POST", "—", f"{submit.cpu_summary()} | {base_post.cpu_summary()}",
                        _machine_ms(submit) / max(_machine_ms(base_post), 1e-9), None))
        if HTTP_ONLY:
            return rows

        burst = count(env, "SELECT count(*) FROM intake WHERE status = 'new'")
        seeded = seed_backlog(env, BACKLOG_ROWS)
        taken, seconds, wall = drain_timed(env)
        per_s = taken / seconds if seconds else 0.0
        rows.append(Row("catch-up: one intake processor, intake rows → leads + events + "
                        "outbox rows/s (PostgreSQL)", f"≥ {CATCH_UP_ROWS_PER_S:,}/s",
                        f"{taken:,} rows ({burst:,} from the burst + {seeded:,} seeded) in "
                        f"{seconds:.1f} s = {per_s:,.0f}/s; {taken / wall:,.0f}/s with process "
                        f"start ({wall:.1f} s)", None, per_s >= CATCH_UP_ROWS_PER_S))
        rows.append(_accounted(env, "after the burst and catch-up"))
    rows += _freshness(ctx)
    return rows


def _accounted(env: dict[str, str], when: str) -> Row:
    """Every accepted submit is one submission: accepted (a lead) or quarantined."""
    received = count(env, "SELECT count(*) FROM intake")
    leads = count(env, "SELECT count(*) FROM submissions WHERE intake_id IS NOT NULL "
                       "AND status <> 'quarantined'")
    quarantined = count(env, "SELECT count(*) FROM submissions WHERE intake_id IS NOT NULL "
                             "AND status = 'quarantined'")
    left = count(env, "SELECT count(*) FROM intake WHERE status <> 'done'")
    duplicates = count(env, "SELECT count(*) FROM intake i JOIN submissions s "
                            "ON s.id = i.submission_id WHERE s.intake_id <> i.id")
    return Row(f"accepted submits = leads + quarantined ({when})", "equal",
               f"{received:,} intake rows; {leads:,} accepted + {quarantined:,} quarantined "
               f"+ {duplicates:,} repeats of an earlier submission; {left} not done", None,
               received == leads + quarantined + duplicates and left == 0)


def _freshness(ctx: Context) -> list[Row]:
    """A steady FRESH_RATE submits/s with FRESH_WORKERS RQ workers running, on a fresh
    database: submit → lead visible, and submit → the first nurture email's ledger row."""
    with kindling(ctx.tmp / "fresh", SETTINGS) as (base, env):
        workers = [subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=REPO_ROOT,
            env={**os.environ, **env}, stdout=open(ctx.tmp / f"fresh-worker-{n}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT) for n in range(FRESH_WORKERS)]
        watcher = Watcher(env["DATABASE_URL"], "fresh-")
        try:
            time.sleep(3)  # the workers start
            ts, _ = _page(base)
            time.sleep(2.1)  # the form's minimum time to submit
            watcher.start()
            sent = steady_submits(base, ts, FRESH_RATE, FRESH_SECONDS)
            settle = time.monotonic() + FRESH_SETTLE_SECONDS
            while time.monotonic() < settle and (
                    len(watcher.lead_seen) < len(sent.accepted)
                    or len(watcher.email_seen) < len(sent.accepted)):
                time.sleep(0.5)
        finally:
            watcher.stop()
            stop_processes(workers)
        lead_s = [watcher.lead_seen[e] - sent.sent_at[e] if e in watcher.lead_seen
                  else float("inf") for e in sent.accepted]
        mail_s = [watcher.email_seen[e] - sent.sent_at[e] if e in watcher.email_seen
                  else float("inf") for e in sent.accepted]
        got = len(sent.accepted)
        rate = f"{got:,} submits at {FRESH_RATE:g}/s over {FRESH_SECONDS:g} s, " \
               f"{FRESH_WORKERS} RQ workers"
        lead99, mail99 = percentile(lead_s, 99), percentile(mail_s, 99)
        rows = [
            Row("freshness: submit → lead row visible, p99", f"≤ {FRESH_LEAD_P99_S:g} s",
                f"p50 {percentile(lead_s, 50):.2f} s, p99 {lead99:.2f} s, max "
                f"{max(lead_s, default=0):.2f} s; {rate}; {sent.errors} errors", None,
                lead99 <= FRESH_LEAD_P99_S and not sent.errors and got > 0),
            Row("freshness: submit → first nurture email queued (its ledger row), p99",
                f"≤ {FRESH_EMAIL_P99_S:g} s",
                f"p50 {percentile(mail_s, 50):.2f} s, p99 {mail99:.2f} s, max "
                f"{max(mail_s, default=0):.2f} s; {len(watcher.email_seen):,} of {got:,} seen",
                None, mail99 <= FRESH_EMAIL_P99_S and got > 0),
            _accounted(env, "after the steady run"),
        ]
    return rows


def _post_baseline_script() -> str:
    from bench.lib import post_form_script

    return post_form_script("email=bench%40example.com&first_name=Bench&company=Load+Test")

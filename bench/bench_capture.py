"""Capture: landing-page GET, revalidation, form-submit throughput and the intake processor's
catch-up, under gunicorn on PostgreSQL.

Each HTTP figure is a ratio against the bare Flask baseline served by the same gunicorn (2
workers) in the same run. Every submit uses a new email, so each request writes one intake row
(no duplicate short-cut is measured). No worker runs during the burst: afterwards one intake
processor (`flask intake process`, one process) turns the backlog into leads, submissions,
events and outbox rows, and its rows/s is the catch-up figure. Then: accepted submits = leads
+ quarantined submissions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote

from bench.kindling_server import count, kindling
from bench.lib import REPO_ROOT, Context, Row

SUBMIT_TARGET = 0.30
SUBMIT_P99_MS = 50.0
PAGE_TARGET = 0.80
CATCH_UP_ROWS_PER_S = 1000

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


def _revalidate_script(etag: str) -> str:
    return f"""
request = function()
  return wrk.format("GET", "/p/demo", {{["If-None-Match"] = '{etag}'}})
end
"""


def _process(env: dict[str, str]) -> float:
    """Seconds one intake processor takes to empty the backlog."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "intake", "process"],
                   cwd=REPO_ROOT, env={**os.environ, **env}, check=True,
                   capture_output=True, timeout=1800)
    return time.perf_counter() - started


def run(ctx: Context) -> list[Row]:
    base_get = ctx.baseline()
    base_post = ctx.baseline_for("/submit", script=_post_baseline_script())
    rows: list[Row] = []
    with kindling(ctx.tmp, SETTINGS + "INTAKE_SWEEP_SECONDS = 3600\n") as (base, env):
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

        backlog = count(env, "SELECT count(*) FROM intake WHERE status = 'new'")
        seconds = _process(env)
        per_s = backlog / seconds if seconds else 0.0
        leads = count(env, "SELECT count(*) FROM submissions WHERE intake_id IS NOT NULL "
                           "AND status <> 'quarantined'")
        quarantined = count(env, "SELECT count(*) FROM submissions WHERE intake_id IS NOT NULL "
                                 "AND status = 'quarantined'")
        left = count(env, "SELECT count(*) FROM intake WHERE status <> 'done'")
        rows.append(Row("catch-up: one intake processor, intake rows → leads/s",
                        f"≥ {CATCH_UP_ROWS_PER_S:,}/s",
                        f"{backlog:,} rows in {seconds:.1f} s = {per_s:,.0f}/s "
                        "(process start included)", None, per_s >= CATCH_UP_ROWS_PER_S))
        rows.append(Row("accepted submits = leads + quarantined", "equal",
                        f"{received:,} intake rows; {leads:,} accepted + {quarantined:,} "
                        f"quarantined; {left} not done", None,
                        received == leads + quarantined and left == 0))
    return rows


def _post_baseline_script() -> str:
    from bench.lib import post_form_script

    return post_form_script("email=bench%40example.com&first_name=Bench&company=Load+Test")

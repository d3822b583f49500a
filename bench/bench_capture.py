"""Capture: landing-page GET and form-submit throughput under gunicorn on PostgreSQL.

Each is a ratio against the bare Flask baseline served by the same gunicorn (2 workers) in the
same run. Every submit uses a new email, so each request writes a lead, a submission, an event
and an outbox row and enqueues the follow-up on Redis: no duplicate short-cut is measured.
"""

from __future__ import annotations

import re
import time
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import quote

from bench.kindling_server import count, kindling
from bench.lib import Context, Row

SUBMIT_TARGET = 0.30
SUBMIT_P99_MS = 50.0
PAGE_TARGET = 0.60

# The limiter stays on (its Redis round trip is part of the cost) with a limit no load test hits.
SETTINGS = 'FORM_RATE_LIMIT = "100000000 per minute"\n'


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or \
        re.search(rf'value="([^"]*)"[^>]*name="{name}"', html)
    if not match:
        raise RuntimeError(f"no {name} field on the landing page")
    return match.group(1)


def _session(base: str) -> tuple[str, str, str]:
    """(cookie header, csrf token, render timestamp) from one real page view."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(base + "/p/demo", timeout=10).read().decode()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, _field(html, "csrf_token"), _field(html, "ts")


def _submit_script(cookie: str, csrf: str, ts: str) -> str:
    fixed = (f"csrf_token={quote(csrf)}&ts={quote(ts)}&first_name=Bench&company=Load+Test"
             "&job_title=Director&country=GB&consent=y&website=")
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
    ["Cookie"] = "{cookie}",
  }}, body)
end
"""


def run(ctx: Context) -> list[Row]:
    base_get = ctx.baseline()
    base_post = ctx.baseline_for("/submit", script=_post_baseline_script())
    rows: list[Row] = []
    with kindling(ctx.tmp, SETTINGS) as (base, env):
        page = ctx.wrk(base + "/p/demo")
        ratio = page.requests_per_s / base_get.requests_per_s
        rows.append(Row("landing page GET /p/demo (PostgreSQL)", f"≥ {PAGE_TARGET:.2f}×",
                        page.summary(), ratio, ratio >= PAGE_TARGET and not page.non_2xx_3xx))

        cookie, csrf, ts = _session(base)
        time.sleep(2.1)  # the form's minimum time to submit
        before = count(env, "SELECT count(*) FROM leads")
        submit = ctx.wrk(base, script=_submit_script(cookie, csrf, ts))
        leads = count(env, "SELECT count(*) FROM leads") - before
        quarantined = count(env, "SELECT count(*) FROM submissions WHERE status = 'quarantined'")
        ratio = submit.requests_per_s / base_post.requests_per_s
        ok = (ratio >= SUBMIT_TARGET and submit.p99_ms < SUBMIT_P99_MS
              and not submit.non_2xx_3xx and quarantined == 0)
        rows.append(Row(f"form submit POST /p/demo, p99 < {SUBMIT_P99_MS:.0f} ms (PostgreSQL)",
                        f"≥ {SUBMIT_TARGET:.2f}×",
                        f"{submit.summary()}; {leads:,} leads written, {quarantined} quarantined",
                        ratio, ok))
    return rows


def _post_baseline_script() -> str:
    from bench.lib import post_form_script

    return post_form_script("email=bench%40example.com&first_name=Bench&company=Load+Test")

"""`make load`: 200 simulated visitors submitting the demo landing page and a storm of email-open
pixels at the same time, for LOAD_SECONDS (default 120), all on loopback, against Kindling under
gunicorn with a real worker and scheduler (PostgreSQL and Redis as `bench/kindling_server.py`
sets them up).

Each visitor reads the page (GET), waits like a person (the form's minimum time to submit),
submits it with a new address, and starts again. The pixel storm fetches open pixels of the
demo's sent emails as fast as PIXEL_THREADS (50) threads can. Printed: requests, errors and
p50 / p95 / p99 per kind. Then it waits (up to LOAD_SETTLE_SECONDS, 300) for the worker to catch
up: every accepted submission a lead, every visitor's asset email sent. It checks that no lead is
lost and that no email went out twice (one `.eml` per recipient and subject in the local outbox),
and says how many emails were still owed when the wait ran out. Exit status 1 when a check fails.

Loopback only: every URL is 127.0.0.1.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from email.parser import BytesHeaderParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.kindling_server import count, kindling
from bench.lib import REPO_ROOT, stop_processes

SECONDS = float(os.environ.get("LOAD_SECONDS", "120"))
VISITORS = int(os.environ.get("LOAD_VISITORS", "200"))
PIXEL_THREADS = int(os.environ.get("LOAD_PIXEL_THREADS", "50"))
SETTLE_SECONDS = float(os.environ.get("LOAD_SETTLE_SECONDS", "300"))
# A limit per address no load test reaches (every simulated visitor shares 127.0.0.1).
SETTINGS = 'FORM_RATE_LIMIT = "100000000 per minute"\n'
INPUT = re.compile(r"<input\b[^>]*>", re.DOTALL)
ATTR = re.compile(r'([\w-]+)="([^"]*)"')


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.accepted: set[str] = set()

    def add(self, kind: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.times[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1


def _conn(base: str) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    assert parts.hostname == "127.0.0.1", "loopback only"
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def _form_fields(html: str) -> dict[str, str]:
    fields = {}
    for tag in INPUT.findall(html):
        attrs = dict(ATTR.findall(tag))
        if attrs.get("name") and attrs.get("type") not in ("checkbox", "radio", "submit"):
            fields[attrs["name"]] = attrs.get("value", "")
    return fields


def visitor(base: str, number: int, deadline: float, stats: Stats) -> None:
    conn = _conn(base)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        email = f"load-{number}-{n}@example.com"
        try:
            started = time.monotonic()
            conn.request("GET", "/p/demo")
            page = conn.getresponse()
            html = page.read().decode(errors="replace")
            stats.add("landing page GET", time.monotonic() - started, page.status == 200)
            time.sleep(2.2)  # a person filling the form in (over its minimum time to submit)
            fields = _form_fields(html)
            fields.update(email=email, first_name="Load", company="Load Test",
                          job_title="Director", country="GB", consent="y")
            body = urlencode(fields)
            started = time.monotonic()
            conn.request("POST", "/p/demo", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Origin": base,
                "Sec-Fetch-Site": "same-origin"})
            answer = conn.getresponse()
            answer.read()
            ok = answer.status == 303
            stats.add("form submit POST", time.monotonic() - started, ok)
            if ok:
                with stats.lock:
                    stats.accepted.add(email)
        except (OSError, http.client.HTTPException):
            stats.add("form submit POST", 0.0, False)
            conn.close()
            conn = _conn(base)


def pixels(base: str, tokens: list[str], deadline: float, stats: Stats, offset: int) -> None:
    conn = _conn(base)
    i = offset
    while time.monotonic() < deadline:
        i += 1
        path = f"/t/o/{tokens[i % len(tokens)]}.gif" if tokens else "/t/o/unknown.gif"
        try:
            started = time.monotonic()
            conn.request("GET", path, headers={"User-Agent": "Mozilla/5.0 (load test)"})
            answer = conn.getresponse()
            answer.read()
            stats.add("open pixel GET", time.monotonic() - started, answer.status == 200)
        except (OSError, http.client.HTTPException):
            stats.add("open pixel GET", 0.0, False)
            conn.close()
            conn = _conn(base)


def _open_tokens(env: dict[str, str]) -> list[str]:
    code = ("import sqlalchemy as sa\nfrom app import create_app\nfrom app.db import db\n"
            "from nurture.models import Send\nfrom nurture.tracking.tokens import open_token\n"
            "app = create_app()\nwith app.app_context():\n"
            "    for i in db.session.scalars(sa.select(Send.id).limit(500)):\n"
            "        print(open_token(i))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120, check=False)
    return out.stdout.split()


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _visitor_emails(outbox: Path) -> Counter[tuple[str, str]]:
    """(recipient, subject) -> how many .eml files in the local outbox carry it, for the
    simulated visitors' emails only (the demo's own, e.g. two downloads for one demo lead who
    submitted twice, are not the load's)."""
    seen: Counter[tuple[str, str]] = Counter()
    parser = BytesHeaderParser()
    for path in outbox.glob("**/*.eml"):
        with path.open("rb") as fh:
            headers = parser.parse(fh)
        if "load-" in str(headers.get("To", "")):
            seen[(str(headers.get("To", "")), str(headers.get("Subject", "")))] += 1
    return seen


def _duplicated(emails: Counter[tuple[str, str]]) -> int:
    """Pairs sent more than once (printed)."""
    twice = [(pair, n) for pair, n in emails.items() if n > 1]
    for (to, subject), n in twice[:10]:
        print(f"sent {n} times: to {to}, subject {subject!r}")
    return len(twice)


def main() -> int:
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="kindling-load-") as tmp_name:
        tmp = Path(tmp_name)
        with kindling(tmp, SETTINGS, workers=4) as (base, env):
            procs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", command],
                                      cwd=REPO_ROOT, env={**os.environ, **env},
                                      stdout=open(tmp / f"{command}.log", "wb"),  # noqa: SIM115
                                      stderr=subprocess.STDOUT)
                     for command in ("worker", "worker", "scheduler")]
            try:
                tokens = _open_tokens(env)
                before = count(env, "SELECT count(*) FROM leads")
                deadline = time.monotonic() + SECONDS
                threads = [threading.Thread(target=visitor, args=(base, n, deadline, stats))
                           for n in range(VISITORS)]
                threads += [threading.Thread(target=pixels, args=(base, tokens, deadline,
                                                                  stats, n * 7))
                            for n in range(PIXEL_THREADS)]
                print(f"load: {VISITORS} visitors and {PIXEL_THREADS} pixel threads for "
                      f"{SECONDS:g} s on {base}", flush=True)
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                accepted = len(stats.accepted)
                settle_until = time.monotonic() + SETTLE_SECONDS
                leads = 0
                while time.monotonic() < settle_until:
                    leads = count(env, "SELECT count(*) FROM leads WHERE email LIKE 'load-%'")
                    if leads >= accepted:
                        break
                    time.sleep(2)
                total = count(env, "SELECT count(*) FROM leads") - before
                # Every accepted submit is owed its asset email: wait (same budget) until each
                # load address has had one, so that the duplicate check sees the real traffic.
                outbox = Path(env["INSTANCE_PATH"]) / "outbox"
                while True:
                    emails = _visitor_emails(outbox)
                    mailed = {to for to, _subject in emails}
                    if len(mailed) >= accepted or time.monotonic() >= settle_until:
                        break
                    time.sleep(5)
                duplicates = _duplicated(emails)
                sent = len(list(outbox.glob("**/*.eml")))
            finally:
                stop_processes(procs)

    print(f"\n{'kind':<20} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'req/s':>8}")
    for kind, values in sorted(stats.times.items()):
        ok = [v for v in values if v > 0]
        print(f"{kind:<20} {len(values):>9} {stats.errors[kind]:>7} "
              f"{_percentile(ok, 50) * 1000:>8.1f} {_percentile(ok, 95) * 1000:>8.1f} "
              f"{_percentile(ok, 99) * 1000:>8.1f} {len(values) / SECONDS:>8.1f}")
    lost = max(0, accepted - leads)
    print(f"\nsubmissions accepted: {accepted}; leads written: {leads} "
          f"({total} new leads in all); lost: {lost}")
    print(f"emails in the outbox: {sent}; visitors mailed: {len(mailed)} of {accepted} "
          f"({max(0, accepted - len(mailed))} not yet when the wait of {SETTLE_SECONDS:g} s "
          f"ran out); sent twice (same recipient and subject): {duplicates}")
    failed = lost > 0 or duplicates > 0 or accepted == 0
    print("load: " + ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

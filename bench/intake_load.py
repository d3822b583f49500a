"""Load for the intake processor's benchmark rows (`bench_capture`).

- `python -m bench.intake_backlog`-style helpers run inside the app: `seed_backlog` writes N
  pending intake rows for the demo form as the submit path writes them (`forms.intake.row_values`:
  1 % suspects, 5 % repeat an earlier address, half with a browser id); `drain_timed` runs one
  intake processor (`forms.processor.drain`) and prints the rows and the seconds it took.
- `steady_submits` posts the demo landing page at a steady rate from threads, and `Watcher` polls
  PostgreSQL for each submit's lead and first nurture email (its ledger row), so freshness is
  measured as a visitor and a marketer see it: from the moment the POST was sent.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from bench.lib import REPO_ROOT

SEED = """
import random, sys, time
import sqlalchemy as sa
from app import create_app
from app.db import db
from forms import intake
from forms.models import Form, Intake
from forms.pipeline import Context

n, tag = int(sys.argv[1]), sys.argv[2]
app = create_app()
with app.app_context():
    from campaigns.seed import FORM_NAME
    form = db.session.scalar(sa.select(Form).where(Form.name == FORM_NAME))
    rnd = random.Random(7)
    rows = []
    for i in range(n):
        j = rnd.randrange(max(1, i)) if i and rnd.random() < 0.05 else i
        data = {"email": f"backlog-{tag}-{j}@example.com", "first_name": f"Reader{i % 97}",
                "company": f"Company {i % 501}", "job_title": "Director", "country": "GB",
                "consent": True, "tz": "Europe/London", "utm_source": "bench"}
        suspect = "honeypot filled" if rnd.random() < 0.01 else None
        ctx = Context(ip=f"203.0.113.{i % 250}", user_agent="bench",
                      visitor_id=f"v{tag}{i:08d}" if i % 2 else None, channel="hosted")
        values = intake.row_values(form, data, data, ctx, suspect)
        values["dedupe_key"] = f"bench-{tag}-{i}"
        rows.append(values)
        if len(rows) == 2000:
            db.session.execute(sa.insert(Intake), rows)
            db.session.commit()
            rows = []
    if rows:
        db.session.execute(sa.insert(Intake), rows)
        db.session.commit()
print(n)
"""

DRAIN = """
import time
from app import create_app
from forms import processor
app = create_app()
with app.app_context():
    started = time.perf_counter()
    taken = processor.drain(max_batches=100000)
    print(taken, time.perf_counter() - started)
"""


def _python(env: dict[str, str], code: str, *args: str, timeout: float = 1800) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO_ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench helper failed:\n{out.stdout}\n{out.stderr[-4000:]}")
    return out.stdout.strip().splitlines()[-1]


def seed_backlog(env: dict[str, str], n: int, tag: str = "a") -> int:
    return int(_python(env, SEED, str(n), tag))


def drain_timed(env: dict[str, str]) -> tuple[int, float, float]:
    """(rows taken, seconds draining, seconds of the whole process, start-up included)."""
    started = time.perf_counter()
    taken, seconds = _python(env, DRAIN).split()
    return int(taken), float(seconds), time.perf_counter() - started


# -- steady submits and what a marketer sees -------------------------------------------------

@dataclass
class Submits:
    sent_at: dict[str, float] = field(default_factory=dict)  # email -> time.time() sent
    accepted: set[str] = field(default_factory=set)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def steady_submits(base: str, ts: str, rate: float, seconds: float, threads: int = 8) -> Submits:
    """POST /p/demo `rate` times a second for `seconds`, each with a new address, spread over
    `threads` keep-alive connections (a late thread catches up, so the rate holds)."""
    result = Submits()
    parts = urlsplit(base)
    start = time.time() + 0.2
    total = int(rate * seconds)
    fixed = (f"ts={quote(ts)}&first_name=Fresh&company=Steady+Ltd&job_title=Director"
             "&country=GB&consent=y&website=&tz=Europe%2FLondon")

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for n in range(offset, total, threads):
            due = start + n / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            email = f"fresh-{n}@example.com"
            body = f"email={quote(email)}&{fixed}"
            sent = time.time()
            try:
                conn.request("POST", "/p/demo", body, {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Sec-Fetch-Site": "same-origin"})
                response = conn.getresponse()
                response.read()
                ok = response.status < 400
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            with result.lock:
                result.sent_at[email] = sent
                if ok:
                    result.accepted.add(email)
                else:
                    result.errors += 1
        conn.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return result


class Watcher(threading.Thread):
    """Polls the database every `interval` s: when each address's lead and its first nurture
    email's ledger row (`nurture_sends`) first became visible (time.time())."""

    def __init__(self, database_url: str, prefix: str, interval: float = 0.1):
        super().__init__(daemon=True)
        self.url = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.prefix = prefix
        self.interval = interval
        self.lead_seen: dict[str, float] = {}
        self.email_seen: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        # Every poll reads all the addresses again: an id watermark would miss a batch that
        # committed after a newer one (two workers at once).
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.is_set():
                now = time.time()
                for (email,) in conn.execute("SELECT email FROM leads WHERE email LIKE %s",
                                             (self.prefix + "%",)).fetchall():
                    self.lead_seen.setdefault(email, now)
                for (email,) in conn.execute(
                        "SELECT DISTINCT l.email FROM nurture_sends s JOIN leads l "
                        "ON l.id = s.lead_id WHERE l.email LIKE %s",
                        (self.prefix + "%",)).fetchall():
                    self.email_seen.setdefault(email, now)
                self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

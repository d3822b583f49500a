"""Nurture: email send throughput of one worker, and the engine's tick on a large table.

(a) One `flask worker --burst --queue mail` process works the real `nurture.jobs.run_steps` jobs (chunks of steps)
    (enqueued by the real `engine.tick`) for N enrollments whose step is an email, sending through
    the real SendGrid backend to the loopback fake (`tests/fakes/sendgrid_server.py`) answering
    after 30 ms. Emails/s is timed from the fake's first to its last request (worker start-up
    excluded). Target from the issue: ≥ 100 emails/s. In the same run: the fake's own capacity
    with 16 concurrent keep-alive clients (shows the target is reachable against this fake), and
    the same worker against a fake with no delay (the per-job cost the latency adds to).

(b) `nurture.engine.tick()` (real code, in-process app context, Redis enqueues included) with
    10,000 due among 100,000 and then 1,000,000 enrollments on PostgreSQL. Timed until every due
    row is enqueued (the default NURTURE_TICK_BATCH × NURTURE_TICK_MAX_BATCHES caps one tick at
    4,000, so it takes several ticks; the row says how many). Target ≤ 3 s, and the 1M time should
    stay about the 100k time (it should grow with the due count, not the table).

Sizes: BENCH_NURTURE_SENDS (100), BENCH_NURTURE_SENDS_NODELAY (50), BENCH_TICK_DUE (10000), BENCH_TICK_TOTAL (1000000),
BENCH_TICK_SMALL_TOTAL (100000), BENCH_TICK_LEADS (100000).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

from bench.lib import REPO_ROOT, Context, Row
from bench.scratch import Scratch, env_int, flask_cmd, insert_select, load_leads, scratch_db

DB_NAME = "kindling_bench_nurture"
REDIS_DB = 14

SEND_TARGET = 100.0  # emails/s, one worker, 30 ms provider latency
TICK_TARGET_S = 3.0
TICK_GROWTH_TARGET = 1.5  # t(1M total) / t(100k total), same due count
LATENCY_S = 0.03


# ---------------------------------------------------------------- data

def _sequence(scratch: Scratch, seq_id: int, name: str) -> int:
    """An active sequence with one email step (step id = seq_id); returns the step id."""
    from nurture.models import Sequence, Step

    body = ("Hi {{ lead.first_name }},\n\nHere is the guide you asked for: "
            "[read it](https://example.com/guide).\n\nThanks!")
    one = "(SELECT 1) AS one"
    insert_select(scratch, Sequence, {
        "id": str(seq_id), "name": _sql_str(name), "status": "'active'",
        "window_days": "'[0,1,2,3,4,5,6]'::jsonb", "window_start_hour": "0",
        "window_end_hour": "24", "frequency_cap_hours": "0"}, one)
    insert_select(scratch, Step, {
        "id": str(seq_id), "sequence_id": str(seq_id), "position": "0", "kind": "'email'",
        "subject": _sql_str("Your guide, {{ lead.first_name }}"), "body": _sql_str(body),
        "body_format": "'markdown'"}, one)
    return seq_id


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _enroll_due(scratch: Scratch, seq_id: int, first_lead: int, count: int) -> None:
    from nurture.models import Enrollment

    insert_select(scratch, Enrollment, {
        "lead_id": "g", "sequence_id": str(seq_id), "step_id": str(seq_id),
        "status": "'active'", "next_run_at": "now() - interval '1 minute'",
        "step_entered_at": "now()", "source": "'bench'"},
        f"generate_series({first_lead}, {first_lead + count - 1}) AS g", reset_id=False)


# ---------------------------------------------------------------- (a) send throughput

def _tick_all(app) -> int:
    from nurture import engine

    total = 0
    with app.app_context():
        while True:
            got = engine.tick()
            total += got
            if got == 0:
                return total


def _worker_run(scratch: Scratch, fake, expected: int, timeout: float) -> tuple[float, int, str]:
    """Run one burst worker on the mail queue; (emails/s first→last request, sends seen, log)."""
    env = {**scratch.env, "SENDGRID_API_KEY": "SG.bench-not-a-key", "SENDGRID_API_HOST": fake.url}
    log_path = scratch.instance / f"worker-{time.time_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(flask_cmd("worker", "--burst", "--queue", "mail"), cwd=REPO_ROOT,
                                env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    first = last = None
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            count = len(fake.mail_sends)
            now = time.monotonic()
            if count and first is None:
                first = now
            if count != seen:
                seen, last = count, now
            if count >= expected or proc.poll() is not None:
                break
            if now > deadline:
                raise RuntimeError(f"worker did not finish {expected} sends in {timeout:.0f} s "
                                   f"({seen} sent)")
            time.sleep(0.005)
        proc.wait(timeout=30)
        seen = len(fake.mail_sends)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    text = log_path.read_text(errors="replace")
    if first is None or last is None or seen < 2:
        raise RuntimeError(f"worker sent {seen} of {expected} emails:\n{text[-3000:]}")
    # n requests span n-1 intervals; the last one's own latency finishes inside the window too
    rate = (seen - 1) / max(last - first, 1e-6)
    return rate, seen, text


def _fake_capacity(url: str, clients: int = 16, seconds: float = 2.0) -> float:
    """Requests/s the fake answers to `clients` threads each on one keep-alive connection."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"personalizations": [{"to": [{"email": "x@example.com"}]}],
                       "from": {"email": "hello@example.com"}, "subject": "x",
                       "content": [{"type": "text/plain", "value": "x"}]}).encode()
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.monotonic() < stop:
            conn.request("POST", "/v3/mail/send", body=body,
                         headers={"Content-Type": "application/json",
                                  "Authorization": "Bearer x"})
            conn.getresponse().read()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 15)
    return sum(counts) / (time.monotonic() - started)


def _send_rows(ctx: Context, scratch: Scratch) -> list[Row]:
    from tests.fakes.sendgrid_server import FakeSendGrid

    n = env_int("BENCH_NURTURE_SENDS", 100)
    n0 = env_int("BENCH_NURTURE_SENDS_NODELAY", 50)
    load_leads(scratch, max(n, n0))
    app = scratch.app()
    rows: list[Row] = []
    timeout = max(120.0, n * 2.0)

    # 1. the setup: provider answers after 30 ms
    _sequence(scratch, 1, "bench: 30 ms provider")
    _enroll_due(scratch, 1, 1, n)
    enqueued = _tick_all(app)
    fake = FakeSendGrid(delay=LATENCY_S).start()
    try:
        rate, seen, _ = _worker_run(scratch, fake, n, timeout)
        capacity = _fake_capacity(fake.url)
    finally:
        fake.stop()
    sent_rows = scratch.scalar("SELECT count(*) FROM nurture_sends WHERE status = 'sent' "
                               "AND step_id = 1")
    ok = rate >= SEND_TARGET and seen == n == sent_rows == enqueued
    rows.append(Row(f"nurture send: 1 worker, run_step jobs, SendGrid +{LATENCY_S * 1000:.0f} ms "
                    f"({n} emails)",
                    f"≥ {SEND_TARGET:.0f} emails/s",
                    f"{rate:,.1f} emails/s; {seen} requests, {sent_rows} ledger rows sent "
                    f"(serial ceiling {1 / LATENCY_S:.0f}/s)",
                    rate / SEND_TARGET, ok))
    rows.append(Row(f"  reference: fake SendGrid +{LATENCY_S * 1000:.0f} ms, 16 keep-alive "
                    "clients (same run)",
                    "—", f"{capacity:,.0f} requests/s (what concurrency reaches here)",
                    capacity / SEND_TARGET, None))

    # 2. same worker, provider answering at once: the per-job cost without network latency
    _sequence(scratch, 2, "bench: instant provider")
    _enroll_due(scratch, 2, 1, n0)
    _tick_all(app)
    fake = FakeSendGrid(delay=0.0).start()
    try:
        rate0, seen0, _ = _worker_run(scratch, fake, n0, max(120.0, n0 * 2.0))
    finally:
        fake.stop()
    rows.append(Row(f"  reference: same worker, SendGrid +0 ms ({n0} emails)", "—",
                    f"{rate0:,.1f} emails/s; {seen0} requests "
                    f"(≈ {1000 / rate0:.0f} ms of work per job besides the provider)",
                    rate0 / SEND_TARGET, None))
    return rows


# ---------------------------------------------------------------- (b) the tick

def _tick_data(scratch: Scratch, leads: int, first: int, last: int, due_every: int,
               seq_base: int) -> None:
    """Enrollments first…last: lead (g-1) % leads + 1 in sequence seq_base + (g-1) / leads.
    Every `due_every`-th is due; the rest are finished (60 %) or waiting for a future step."""
    from nurture.models import Enrollment

    live = f"(g % {due_every} = 0 OR g % 5 >= 3)"
    seq = f"{seq_base} + (g - 1) / {leads}"
    insert_select(scratch, Enrollment, {
        "id": "g", "lead_id": f"(g - 1) % {leads} + 1", "sequence_id": seq,
        "step_id": f"CASE WHEN {live} THEN {seq} END",
        "status": f"CASE WHEN {live} THEN 'active' ELSE 'finished' END",
        "next_run_at": f"""CASE WHEN g % {due_every} = 0 THEN now() - (g % 600) * interval '1 second'
                    WHEN g % 5 >= 3 THEN now() + (1 + g % 43200) * interval '1 minute' END""",
        "step_entered_at": "now() - interval '3 days'", "source": "'bench'",
        "created_at": "now() - interval '30 days'",
        "ended_at": f"CASE WHEN {live} THEN NULL ELSE now() - interval '1 day' END"},
        f"generate_series({first}, {last}) AS g")


def _timed_ticks(app, scratch: Scratch, due: int) -> tuple[float, int, int, int]:
    """(seconds, ticks, enqueued, jobs on the mail queue) to enqueue every due enrollment."""
    from app.db import db
    from nurture import engine

    conn = scratch.redis()
    conn.flushdb()
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))  # connections warm, outside the timing
        app.extensions["redis"].ping()
        db.session.commit()
        ticks = enqueued = 0
        started = time.monotonic()
        while enqueued < due and ticks < 50:
            got = engine.tick()
            ticks += 1
            enqueued += got
            if got == 0:
                break
        elapsed = time.monotonic() - started
        db.session.remove()
    return elapsed, ticks, enqueued, _steps_queued(conn)


def _steps_queued(conn) -> int:
    """(enrollment, step) pairs carried by the jobs on the mail queue: a run_step job carries
    one, a run_steps job a chunk (outside the timing)."""
    from rq import Queue

    total = 0
    for job in Queue("mail", connection=conn).get_jobs():
        if job.func_name.endswith(".run_steps"):
            total += len(job.args[0])
        elif job.func_name.endswith(".run_step"):
            total += 1
    return total


def _tick_rows(ctx: Context, scratch: Scratch) -> list[Row]:
    due = env_int("BENCH_TICK_DUE", 10_000)
    total = env_int("BENCH_TICK_TOTAL", 1_000_000)
    small = env_int("BENCH_TICK_SMALL_TOTAL", 100_000)
    leads = env_int("BENCH_TICK_LEADS", 100_000)
    small = min(small, total)
    sequences = -(-total // leads)
    seq_base = 1000
    print(f"  nurture tick: loading {total:,} enrollments ({leads:,} leads × {sequences} "
          f"sequences), {due:,} due ...", file=sys.stderr, flush=True)
    scratch.execute("TRUNCATE nurture_sends, nurture_enrollments, events, stage_changes, "
                    "leads RESTART IDENTITY CASCADE")
    load_leads(scratch, leads)
    for k in range(sequences):
        _sequence(scratch, seq_base + k, f"bench tick {k}")
    due_every = max(1, small // due)

    _tick_data(scratch, leads, 1, small, due_every, seq_base)
    scratch.execute("ANALYZE nurture_enrollments", "ANALYZE nurture_sequences")
    small_due = scratch.scalar("SELECT count(*) FROM nurture_enrollments WHERE status = 'active'"
                               " AND next_run_at <= now()")
    app = scratch.app()
    t_small, ticks_small, enq_small, jobs_small = _timed_ticks(app, scratch, small_due)

    # Same due rows again, nine times more of everything else.
    scratch.execute(f"""UPDATE nurture_enrollments SET next_run_at = now() - (id % 600)
                            * interval '1 second', claim_token = NULL
                        WHERE id % {due_every} = 0 AND id <= {small}""")
    if total > small:
        step = 200_000
        for start in range(small + 1, total + 1, step):
            # only the first `small` rows carry due ones: due_every larger than the table
            _tick_data(scratch, leads, start, min(start + step - 1, total), total + 1, seq_base)
    scratch.execute("ANALYZE nurture_enrollments")
    big_due = scratch.scalar("SELECT count(*) FROM nurture_enrollments WHERE status = 'active'"
                             " AND next_run_at <= now()")
    t_big, ticks_big, enq_big, jobs_big = _timed_ticks(app, scratch, big_due)

    per_tick = int(app.config["NURTURE_TICK_BATCH"]) * int(app.config["NURTURE_TICK_MAX_BATCHES"])
    rows = []
    for label, n_total, n_due, secs, ticks, enq, jobs in (
            ("100k", small, small_due, t_small, ticks_small, enq_small, jobs_small),
            ("1M", total, big_due, t_big, ticks_big, enq_big, jobs_big)):
        ok = secs <= TICK_TARGET_S and enq == n_due == jobs
        rows.append(Row(f"nurture tick: {n_due:,} due among {n_total:,} enrollments (PostgreSQL,"
                        f" Redis enqueues)",
                        f"≤ {TICK_TARGET_S:.0f} s",
                        f"{secs:.2f} s over {ticks} tick(s) of ≤ {per_tick:,}; {enq:,} enqueued,"
                        f" {jobs:,} steps in jobs on 'mail' ({enq / max(secs, 1e-9):,.0f}/s)",
                        secs / TICK_TARGET_S, ok))
    growth = t_big / max(t_small, 1e-9)
    rows.append(Row(f"nurture tick: time with {total:,} ÷ time with {small:,} total "
                    f"(same {due:,} due)",
                    f"≤ {TICK_GROWTH_TARGET:.1f}× (grows with due, not total)",
                    f"{t_big:.2f} s ÷ {t_small:.2f} s", growth, growth <= TICK_GROWTH_TARGET))
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB) as scratch:
        try:
            rows += _send_rows(ctx, scratch)
        except Exception as exc:  # noqa: BLE001 - the tick half still runs
            import traceback

            traceback.print_exc()
            rows.append(Row("nurture send throughput", f"≥ {SEND_TARGET:.0f} emails/s",
                            f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                            None, False))
        rows += _tick_rows(ctx, scratch)
    return rows

"""The leads workspace on PostgreSQL: the leads list with each filter (first page and a deep
page), a lead's page, and an import.

BENCH_LEADS (1,000,000) leads and BENCH_LEAD_EVENTS (10,000,000) events, bulk-loaded with
varied stages, fit, engagement, owners, activity, campaigns and first-touch sources. Pages are
answered by the real app in-process (Flask's test client, signed in as a marketer: the view,
its queries and the template, no HTTP), BENCH_LEADS_REQUESTS (20) times each; the figure is
the p95. A deep page is the keyset page that starts 90 % of the way down the sort order.
Import: BENCH_IMPORT_ROWS (100,000) rows through `flask leads import` in a subprocess (wall
time, start-up included). Targets from the issue: p95 < 150 ms; ≥ 2,000 rows/s. Ratios are
measured ÷ target (below 1 is better for times, above 1 for rates).
"""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bench.lib import Context, Row
from bench.scratch import (
    Scratch,
    env_int,
    flask_cmd,
    insert_select,
    keep_db,
    load_leads,
    loaded_marker,
    mark_loaded,
    run_measured,
    scratch_db,
)

DB_NAME = "kindling_bench_leads"
REDIS_DB = 9
P95_TARGET_MS = 150.0
IMPORT_TARGET = 2_000.0  # rows/s


def _load(scratch, leads: int, events: int) -> None:
    from app.auth.models import User
    from app.leads.models import Event
    from app.reports.models import ReportLead

    load_leads(scratch, leads)
    insert_select(scratch, User, {
        "id": "g", "email": "'rep' || g || '@example.com'", "name": "'Rep ' || g",
        "password_hash": "'!'", "role": "'sales'", "active": "true"},
        "generate_series(1, 5) AS g")
    # Fit 0–40, engagement 0–90 scored 0–60 days ago (its key as the app computes it, with
    # the default 30-day half-life), stages, owners, activity, suppression.
    scratch.execute(
        "UPDATE leads SET fit_score = id % 41, "
        "engagement_score = (id % 91)::float, "
        "engagement_at = now() - (id % 60) * interval '1 day', "
        "stage = (ARRAY['lead','lead','lead','subscriber','mql','sql','recycled','customer'])"
        "[1 + id % 8], owner_id = CASE WHEN id % 4 = 0 THEN 1 + id % 5 END, "
        "last_activity_at = now() - (id % 200) * interval '1 hour', "
        "unsubscribed_at = CASE WHEN id % 50 = 0 THEN now() END")
    scratch.execute(
        "UPDATE leads SET engagement_key = CASE WHEN engagement_score > 0 THEN "
        "log(2, engagement_score::numeric)::float + extract(epoch FROM engagement_at - "
        "timestamptz '2020-01-01 00:00:00+00') / 86400.0 / 30.0 ELSE -1.0e9 END")
    insert_select(scratch, ReportLead, {
        "lead_id": "g", "created_at": "now()", "created_day": "current_date",
        "channel": "(ARRAY['hosted','embed','import','api'])[1 + g % 4]",
        "campaign_id": "g % 20", "utm_source": "(ARRAY['google','linkedin','newsletter',''])"
                                               "[1 + g % 4]"},
        f"generate_series(1, {leads}) AS g", reset_id=False)
    step = 2_000_000
    for start in range(1, events + 1, step):
        print(f"  leads: events {start:,}…", file=sys.stderr, flush=True)
        insert_select(scratch, Event, {
            "lead_id": f"1 + ((g::bigint * 7919) % {leads})::int",
            "type": "(ARRAY['page_viewed','email_opened','email_clicked','email_sent',"
                    "'form_submitted'])[1 + g % 5]",
            "occurred_at": "now() - (g % 400) * interval '1 hour'",
            "campaign_id": "CASE WHEN g % 3 = 0 THEN g % 20 END",
            "url": "'/p/' || (g % 50)", "is_bot": "g % 11 = 0"},
            f"generate_series({start}, {min(start + step - 1, events)}) AS g",
            reset_id=start == 1)
    # VACUUM too: as autovacuum leaves a table of this age, its visibility map set, so capped
    # counts can be index-only scans (a table just written has none).
    scratch.execute("VACUUM ANALYZE leads", "VACUUM ANALYZE events", "VACUUM ANALYZE report_leads",
                    "VACUUM ANALYZE lead_campaigns", "ANALYZE users")


FILTERS: dict[str, str] = {
    "no filter": "",
    "stage": "stage=mql",
    "fit grade": "grade=A",
    "engagement range": "eng_min=20&eng_max=40",
    "campaign": "campaign=7",
    "owner": "owner=3",
    "source": "source=embed",
    "UTM source": "utm_source=linkedin",
    "created range": "created_from=2026-01-01&created_to=2026-03-31",
    "last activity range": "active_from=2026-11-25",
    "suppressed": "suppressed=yes",
    "sort by engagement": "sort=engagement",
    "sort by name": "sort=name",
}


def _p95(client: Any, url: str, n: int) -> tuple[float, int]:
    times = []
    status = 0
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    times.sort()
    return times[max(0, round(0.95 * len(times)) - 1)], status


def _deep_cursor(app: Any, query: str) -> str | None:
    """The cursor of the page that starts 90 % of the way down this filter's order."""
    from urllib.parse import parse_qs

    from app.db import db
    from app.leads.query import LeadQuery, _row_key, _sort_columns

    lq = LeadQuery.parse({k: v for k, v in parse_qs(query).items()})
    with app.app_context():
        statement = lq.statement()
        # Counted over the statement as a subquery: with_only_columns(count()) dropped the FROM
        # (no filter, a sort, or only a correlated EXISTS: "SELECT count(*)" = 1, so those
        # rows never got a deep page).
        total = db.session.scalar(sa.select(sa.func.count())
                                  .select_from(statement.subquery())) or 0
        if total < 100:
            return None
        order = [c.asc() if lq.direction == "asc" else c.desc() for c in _sort_columns(lq)]
        lead = db.session.scalars(statement.order_by(*order).offset(int(total * 0.9))
                                  .limit(1)).first()
        if lead is None:
            return None
        values = [v.isoformat() if isinstance(v, datetime) else v for v in _row_key(lead, lq)]
        return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _sign_in(app: Any) -> Any:
    from app.auth.models import User, create_user
    from app.db import db

    with app.app_context():
        known = db.session.scalar(sa.select(User.id).where(
            User.email == "bench-marketer@example.com"))
        if known is None:  # a kept database (BENCH_KEEP_DB) already has it
            create_user("bench-marketer@example.com", "bench-password-123", "marketer")
            db.session.commit()
    client = app.test_client()
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    client.post("/login", data={"email": "bench-marketer@example.com",
                                "password": "bench-password-123", "csrf_token": token})
    return client


def _import(ctx: Context, scratch, rows: int) -> Row:
    path = ctx.tmp / "import.csv"
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("\ufeffEmail;First name;Last name;Company;Country;Plan\r\n")
        for n in range(rows):
            email = f"lead{n * 2 + 1}@gmail.com" if n % 5 == 0 else f"new{n}@example.com"
            out.write(f"{email};First{n};Last{n};Company {n % 997};GB;"
                      f"{'=1+1' if n % 100 == 0 else 'pro'}\r\n")
    done = run_measured(flask_cmd("leads", "import", str(path), "--map", "Email=email",
                                  "--map", "Plan=attr", "--source", "Bench import"),
                        scratch.env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"flask leads import failed:\n{done.output[-2000:]}")
    rate = rows / done.seconds
    return Row(f"leads import: {rows:,} rows (1 in 5 an existing lead), flask leads import "
               "(subprocess wall time)", f"≥ {IMPORT_TARGET:,.0f} rows/s",
               f"{rate:,.0f} rows/s ({done.seconds:.1f} s, {done.max_rss_mb:.0f} MB)",
               rate / IMPORT_TARGET, rate >= IMPORT_TARGET)


def _marker(leads: int, events: int) -> str:
    return f"kindling bench leads: {leads} leads, {events} events"


def _holds(scratch: Scratch, leads: int, events: int) -> bool:
    """A kept database still holds exactly the loaded rows (the import's are removed)."""
    return (scratch.scalar("SELECT count(*) FROM leads") == leads
            and scratch.scalar("SELECT count(*) FROM events") == events)


def _forget_import(scratch: Scratch, leads: int, events: int) -> None:
    """Put a kept database back to the loaded rows: drop the leads and events the import
    added (its updates to existing leads' profile fields stay)."""
    scratch.execute(f"DELETE FROM events WHERE id > {events} OR lead_id > {leads}",
                    f"DELETE FROM report_leads WHERE lead_id > {leads}",
                    f"DELETE FROM leads WHERE id > {leads}",
                    "VACUUM ANALYZE leads", "VACUUM ANALYZE events")


def run(ctx: Context) -> list[Row]:
    leads = env_int("BENCH_LEADS", 1_000_000)
    events = env_int("BENCH_LEAD_EVENTS", 10_000_000)
    n = env_int("BENCH_LEADS_REQUESTS", 20)
    keep = keep_db()
    marker = _marker(leads, events)
    rows: list[Row] = []
    # A kept database is reused only if its load finished with these sizes; else it is remade.
    reuse = keep and loaded_marker(DB_NAME) == marker
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB, reuse=reuse, keep=keep) as scratch:
        if reuse:
            if not _holds(scratch, leads, events):
                raise RuntimeError(f"the kept database {DB_NAME} no longer holds exactly "
                                   f"'{marker}': DROP DATABASE {DB_NAME}, then run again")
            print(f"  leads: reusing the kept database {DB_NAME} ({marker})", file=sys.stderr,
                  flush=True)
        else:
            print(f"  leads: loading {leads:,} leads and {events:,} events ...",
                  file=sys.stderr, flush=True)
            _load(scratch, leads, events)
            if keep:
                mark_loaded(DB_NAME, marker)
        app = scratch.app(RATELIMIT_ENABLED=False)
        client = _sign_in(app)
        size = f"{leads:,} leads, {events:,} events"
        for label, query in FILTERS.items():
            first, status = _p95(client, f"/admin/leads/?{query}", n)
            ok = status == 200 and first < P95_TARGET_MS
            rows.append(Row(f"leads list, {label}: first page ({size})",
                            f"p95 < {P95_TARGET_MS:.0f} ms", f"p95 {first:.0f} ms",
                            first / P95_TARGET_MS, ok))
            cursor = _deep_cursor(app, query)
            if cursor is None:
                continue
            sep = "&" if query else ""
            deep, status = _p95(client, f"/admin/leads/?{query}{sep}after={cursor}", n)
            rows.append(Row(f"leads list, {label}: deep page (90 % down)",
                            f"p95 < {P95_TARGET_MS:.0f} ms", f"p95 {deep:.0f} ms",
                            deep / P95_TARGET_MS, status == 200 and deep < P95_TARGET_MS))
        lead_ids = [1 + (k * 7919) % leads for k in range(n)]
        times = []
        for lead_id in lead_ids:
            started = time.perf_counter()
            client.get(f"/admin/leads/{lead_id}")
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[max(0, round(0.95 * len(times)) - 1)]
        rows.append(Row(f"lead page (timeline first page, ~{events // max(leads, 1)} events a "
                        "lead)", f"p95 < {P95_TARGET_MS:.0f} ms", f"p95 {p95:.0f} ms",
                        p95 / P95_TARGET_MS, p95 < P95_TARGET_MS))
        import_rows = env_int("BENCH_IMPORT_ROWS", 100_000)
        if import_rows > 0:
            try:
                rows.append(_import(ctx, scratch, import_rows))
            finally:
                if keep:
                    _forget_import(scratch, leads, events)
    return rows

"""Reports at scale: every report over 90 days, and the what-if replay over 90 days.

BENCH_REPORT_LEADS (1,000,000) leads created over a year and BENCH_REPORT_EVENTS (10,000,000)
events, bulk-loaded on PostgreSQL: one form submission per lead (hosted or embedded, with UTM
sources, over ten campaigns with a cost), then page visits, email events and pricing views;
5 % of the leads become MQLs, 2 % SQLs, 1 % opportunities, 0.5 % customers, with sales
handoffs decided. `flask reports rebuild-rollups` runs once (its time is shown), then each
report page is requested three times for the last 90 days (the best time counts: the first
request warms the caches) and the what-if runs once. Targets from issue 12: a report under
1 s, the replay under 30 s. Absolute times: the machine's load shows in them.

Events are stored in the order they happened (production appends them as they come), which
the BRIN time index relies on.

BENCH_KEEP_DB=1 keeps the database (`kindling_bench_reports`) after the run, stamped with its
sizes once loaded and rebuilt, and a later run with the same sizes reuses it: only the report
and what-if rows are measured again (the load and rebuild rows say "reused").
"""

from __future__ import annotations

import os
import sys
import time

from bench.lib import Context, Row
from bench.scratch import (
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

# BENCH_REPORTS_DB: another name for a small trial run, so it never drops a kept 1M database.
DB_NAME = os.environ.get("BENCH_REPORTS_DB", "kindling_bench_reports")
REDIS_DB = 13
REPORTS = ("funnel", "over-time", "cost", "speed", "email", "scores")


def _load(scratch, leads: int, events: int) -> None:
    from app.leads.models import Event, StageChange
    from app.sales.models import Assignment
    from campaigns.models import Campaign

    insert_select(scratch, Campaign, {
        "id": "g", "name": "'Campaign ' || g", "slug": "'c' || g", "status": "'live'",
        "cost": "(g * 1000)::numeric", "utm_campaign": "'utm-' || g",
        "starts_on": "(now() - interval '200 days')::date",
        "ends_on": "(now() + interval '30 days')::date"},
        "generate_series(1, 10) AS g")
    load_leads(scratch, leads)
    insert_select(scratch, StageChange, {
        "lead_id": "g", "from_stage": "NULL", "to_stage": "'lead'",
        "changed_at": "now() - (g % 365) * interval '1 day'", "reason": "'bench'",
        "actor": "'form “Bench”'"}, f"generate_series(1, {leads}) AS g", reset_id=False)
    for stage, every, hours in (("mql", 20, 30), ("sql", 50, 60), ("opportunity", 100, 200),
                                ("customer", 200, 400)):
        insert_select(scratch, StageChange, {
            "lead_id": "g", "from_stage": "'lead'", "to_stage": f"'{stage}'",
            "changed_at": f"now() - (g % 365) * interval '1 day' + (g % {hours} + 1) "
                          "* interval '1 hour'",
            "reason": "'bench'", "actor": "'scoring'"},
            f"generate_series(1, {leads}) AS g WHERE g % {every} = 0", reset_id=False)
    scratch.execute("SELECT setval(pg_get_serial_sequence('stage_changes', 'id'), "
                    "(SELECT max(id) FROM stage_changes))")
    insert_select(scratch, Assignment, {
        "lead_id": "s.lead_id", "stage_change_id": "s.id", "method": "'round_robin'",
        "created_at": "s.changed_at",
        "outcome": "CASE WHEN s.lead_id % 60 = 0 THEN 'recycled' ELSE 'accepted' END",
        "decided_at": "s.changed_at + (s.lead_id % 48 + 1) * interval '1 hour'",
        "decision_reason": "CASE WHEN s.lead_id % 60 = 0 THEN 'No budget' ELSE '' END"},
        "stage_changes s WHERE s.to_stage = 'mql'")
    # One form submission per lead, at its creation: hosted on a campaign, or embedded.
    insert_select(scratch, Event, {
        "lead_id": "g", "type": "'form_submitted'",
        "occurred_at": "now() - (g % 365) * interval '1 day'",
        "campaign_id": "CASE WHEN g % 4 = 0 THEN NULL ELSE 1 + g % 10 END",
        "data": "jsonb_build_object('new_lead', true, 'form_id', 1, 'channel', "
                "CASE WHEN g % 4 = 0 THEN 'embed' ELSE 'hosted' END, 'utm', "
                "jsonb_build_object('utm_source', (ARRAY['google','linkedin','newsletter',"
                "'partner','bing'])[1 + g % 5], 'utm_campaign', 'utm-' || (1 + g % 10)))",
        "is_bot": "false"}, f"generate_series(1, {leads}) AS g", reset_id=False)
    # One nurture sequence of three emails and the ledger rows of the 500,000 emails the email
    # events below name (send_id = g % 500000), so the Email report has real steps to show.
    from nurture.models import Enrollment, Send, Sequence, Step

    insert_select(scratch, Sequence, {"id": "1", "name": "'Bench nurture'", "status": "'active'"},
                  "(SELECT 1) AS one")
    insert_select(scratch, Step, {"id": "g", "sequence_id": "1", "position": "g - 1",
                                  "kind": "'email'", "subject": "'Email ' || g || ', {{ lead.first_name }}'"},
                  "generate_series(1, 3) AS g")
    sends = min(500_000, leads // 2)
    insert_select(scratch, Enrollment, {
        "id": "g", "lead_id": "g * 2", "sequence_id": "1", "step_id": "1 + g % 3",
        "status": "'finished'", "campaign_id": "1 + g % 10"},
        f"generate_series(1, {sends}) AS g")
    insert_select(scratch, Send, {
        "id": "g", "enrollment_id": "g", "step_id": "1 + g % 3", "lead_id": "g * 2",
        "status": "'sent'", "subject": "'Email'",
        "sent_at": "now() - ((g::bigint * 104729) % 31536000) * interval '1 second'"},
        f"generate_series(1, {sends}) AS g")
    rest = max(0, events - leads)
    kind = ("(ARRAY['page_viewed','page_viewed','page_viewed','email_sent','email_opened',"
            "'email_opened','email_clicked','email_delivered','page_viewed','unsubscribed'])"
            "[1 + (g * 7) % 10]")
    step = 1_000_000
    for start in range(1, rest + 1, step):
        insert_select(scratch, Event, {
            "lead_id": f"(g::bigint * 7919) % {leads} + 1", "type": kind,
            "occurred_at": "now() - ((g::bigint * 104729) % 31536000) * interval '1 second'",
            "campaign_id": "CASE WHEN (g * 7) % 10 IN (0, 1) THEN 1 + g % 10 END",
            "url": "CASE WHEN (g * 7) % 10 IN (0, 1, 2, 8) THEN (CASE WHEN g % 20 = 0 THEN "
                   "'/pricing' ELSE '/p/c' || (1 + g % 10) END) END",
            # The email's send and step in their columns, as the writers store them now.
            "send_id": "CASE WHEN (g * 7) % 10 IN (3, 4, 5, 6, 9) THEN g % 500000 END",
            "step_id": "CASE WHEN (g * 7) % 10 IN (3, 4, 5, 6, 9) THEN 1 + g % 3 END",
            "is_bot": "(g % 13 = 0)"},
            f"generate_series({start}, {min(start + step - 1, rest)}) AS g", reset_id=False)
    scratch.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), "
                    "(SELECT max(id) FROM events))", "ANALYZE")
    _in_time_order(scratch)


def _in_time_order(scratch) -> None:
    """Store the events in the order they happened, as production appends them (the loader
    writes each kind over the whole year at once): the time index is a BRIN index, which
    only narrows a time range on a table laid out in time. A kept database loaded before this
    step is reordered once, when PostgreSQL's statistics show the layout is not in time."""
    order = scratch.scalar("SELECT correlation FROM pg_stats WHERE tablename = 'events' "
                           "AND attname = 'occurred_at'")
    if order is not None and float(order) > 0.9:
        return
    print("  reports: storing the events in time order (CLUSTER) ...", file=sys.stderr,
          flush=True)
    scratch.execute("CREATE INDEX bench_events_time_order ON events (occurred_at)",
                    "CLUSTER events USING bench_events_time_order",
                    "DROP INDEX bench_events_time_order", "ANALYZE events")


def run(ctx: Context) -> list[Row]:
    n_leads = env_int("BENCH_REPORT_LEADS", 1_000_000)
    n_events = env_int("BENCH_REPORT_EVENTS", 10_000_000)
    rows: list[Row] = []
    keep = keep_db()
    marker = f"kindling bench reports v2 (with sends): {n_leads} leads, {n_events} events"
    reuse = keep and loaded_marker(DB_NAME) == marker
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB, reuse=reuse, keep=keep) as scratch:
        if reuse:
            print(f"  reports: reusing {DB_NAME} ({marker})", file=sys.stderr, flush=True)
            rows.append(Row(f"reports: data reused ({n_leads:,} leads, {n_events:,} events)",
                            "—", "reused", None, None))
            _in_time_order(scratch)
        else:
            print(f"  reports: loading {n_leads:,} leads and {n_events:,} events ...",
                  file=sys.stderr, flush=True)
            started = time.monotonic()
            _load(scratch, n_leads, n_events)
            loaded = time.monotonic() - started
            built = run_measured(flask_cmd("reports", "rebuild-rollups"), scratch.env,
                                 timeout=7200)
            if built.returncode != 0:
                raise RuntimeError(f"rebuild-rollups failed:\n{built.output[-2000:]}")
            rows.append(Row(f"reports: data loaded ({n_leads:,} leads, {n_events:,} events)",
                            "—", f"{loaded:.0f} s", None, None))
            rows.append(Row("reports rebuild-rollups, from scratch", "—",
                            f"{built.seconds:.0f} s, peak RSS {built.max_rss_mb:.0f} MB",
                            None, None))
            if keep:
                mark_loaded(DB_NAME, marker)
        app = scratch.app(TESTING=True, WTF_CSRF_ENABLED=False)
        from datetime import timedelta

        from app.auth.models import create_user
        from app.db import db, utcnow

        with app.app_context():
            from app.auth.models import User

            if db.session.query(User.id).filter_by(email="bench@example.com").first() is None:
                create_user("bench@example.com", "bench-password-1", "marketer")
                db.session.commit()
            today = utcnow().date()
            span = f"since={(today - timedelta(days=89)).isoformat()}&until={today.isoformat()}"
        client = app.test_client()
        signed_in = client.post("/login", data={"email": "bench@example.com",
                                                "password": "bench-password-1"})
        if signed_in.status_code != 302 or "/login" in signed_in.headers.get("Location", ""):
            raise RuntimeError(f"could not sign in: HTTP {signed_in.status_code}")
        for slug in REPORTS:
            for extra in ("", "&mode=moved") if slug == "funnel" else ("",):
                best = None
                for _ in range(3):
                    t0 = time.perf_counter()
                    response = client.get(f"/admin/reports/{slug}?{span}{extra}")
                    took = time.perf_counter() - t0
                    if response.status_code != 200:
                        raise RuntimeError(f"{slug}: HTTP {response.status_code}")
                    best = took if best is None else min(best, took)
                rows.append(Row(f"report {slug}{extra.replace('&', ' ')}, last 90 days", "< 1 s",
                                f"{best * 1000:.0f} ms", best, best < 1.0))
        with app.app_context():
            from nurture.scoring import service, whatif
            from nurture.scoring.rules import Rules

            proposed = Rules.from_dict(service.active_rules().rules.to_dict()
                                       | {"mql_engagement": 35})
            t0 = time.perf_counter()
            result = whatif.compare(proposed, 90)
            took = time.perf_counter() - t0
            db.session.remove()
        rows.append(Row(f"what-if replay, last 90 days ({result['events_replayed']:,} events, "
                        f"{result['leads_replayed']:,} leads)", "< 30 s",
                        f"{took:.1f} s ({result['current_mqls']:,} → "
                        f"{result['proposed_mqls']:,} MQLs)", took / 30, took < 30))
        with app.app_context():
            db.engine.dispose()
    return rows

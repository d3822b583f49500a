"""Scoring: `flask scores rebuild` over a million events.

BENCH_EVENTS (1,000,000) human events over BENCH_SCORING_LEADS (events ÷ 10) leads, bulk-loaded
on PostgreSQL with a realistic mix (page views with some /pricing, opens, clicks, forms,
deliveries) spread over 90 days, interleaved across leads as an append-only log is. Then the real
command runs in a subprocess with the default rules; events/s is every event it read divided
by its wall time, start-up included. Target from the issue: ≥ 50,000 events/s. The start-up of
the same command on an empty table is shown too, measured in the same run, and a second rebuild of the same data (its MQLs already moved) separates the
scoring path from the cost of each stage move.
"""

from __future__ import annotations

import re
import sys

from bench.lib import Context, Row
from bench.scratch import env_int, flask_cmd, insert_select, load_leads, run_measured, scratch_db

DB_NAME = "kindling_bench_scoring"
REDIS_DB = 12
TARGET = 50_000.0  # events/s


def _events(scratch, leads: int, count: int) -> None:
    from app.leads.models import Event

    kind = ("(ARRAY['page_viewed','page_viewed','page_viewed','page_viewed','email_opened',"
            "'email_opened','email_delivered','email_clicked','email_sent','form_submitted'])"
            "[1 + (g * 7) % 10]")
    step = 200_000
    for start in range(1, count + 1, step):
        insert_select(scratch, Event, {
            "lead_id": f"(g::bigint * 7919) % {leads} + 1",
            "type": kind,
            "occurred_at": "now() - ((g::bigint * 104729) % 7776000) * interval '1 second'",
            "url": "CASE WHEN (g * 7) % 10 < 4 THEN (CASE WHEN g % 20 = 0 THEN '/pricing' "
                   "ELSE '/blog/post-' || (g % 50) END) END",
            "data": "'{}'::jsonb",
            "is_bot": "false",
        }, f"generate_series({start}, {min(start + step - 1, count)}) AS g", reset_id=False)


def run(ctx: Context) -> list[Row]:
    n_events = env_int("BENCH_EVENTS", 1_000_000)
    n_leads = env_int("BENCH_SCORING_LEADS", max(1, n_events // 10))
    rows: list[Row] = []
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB) as scratch:
        startup = run_measured(flask_cmd("scores", "rebuild"), scratch.env, timeout=120)
        if startup.returncode != 0:
            raise RuntimeError(f"flask scores rebuild failed:\n{startup.output[-2000:]}")
        print(f"  scoring: loading {n_leads:,} leads and {n_events:,} events ...",
              file=sys.stderr, flush=True)
        load_leads(scratch, n_leads)
        _events(scratch, n_leads, n_events)
        scratch.execute("ANALYZE leads", "ANALYZE events")
        loaded = scratch.scalar("SELECT count(*) FROM events WHERE NOT is_bot")

        done = run_measured(flask_cmd("scores", "rebuild"), scratch.env, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"flask scores rebuild failed:\n{done.output[-2000:]}")
        said = re.search(r"Rescored (\d+) leads \((\d+) events, ([\d,]+) events/s\).*?"
                         r"(\d+) changed, (\d+) moved to MQL", done.output, re.DOTALL)
        if not said:
            raise RuntimeError(f"unexpected output:\n{done.output[-2000:]}")
        leads, events = int(said[1]), int(said[2])
        rate = events / done.seconds
        ok = rate >= TARGET and events == loaded and leads == n_leads
        rows.append(Row(f"scores rebuild: {events:,} events, {leads:,} leads (PostgreSQL, "
                        "subprocess wall time)",
                        f"≥ {TARGET:,.0f} events/s",
                        f"{rate:,.0f} events/s ({done.seconds:.1f} s; the command's own figure "
                        f"{said[3]}/s; {said[4]} changed, {said[5]} to MQL; peak RSS "
                        f"{done.max_rss_mb:.0f} MB)",
                        rate / TARGET, ok))
        # Again: the promoted leads are MQLs now, so this is a rebuild with (almost) no stage
        # moves, isolating the read-and-score path from the per-promotion cost.
        again = run_measured(flask_cmd("scores", "rebuild"), scratch.env, timeout=1800)
        said2 = re.search(r"\((\d+) events.*?(\d+) changed, (\d+) moved to MQL", again.output,
                          re.DOTALL)
        if again.returncode != 0 or not said2:
            raise RuntimeError(f"second rebuild failed:\n{again.output[-2000:]}")
        rate2 = int(said2[1]) / again.seconds
        rows.append(Row("scores rebuild again, same data (nothing left to promote)",
                        f"≥ {TARGET:,.0f} events/s",
                        f"{rate2:,.0f} events/s ({again.seconds:.1f} s; {said2[2]} changed, "
                        f"{said2[3]} to MQL)", rate2 / TARGET, rate2 >= TARGET))
        rows.append(Row("  reference: the same command on an empty table (start-up)", "—",
                        f"{startup.seconds:.1f} s", None, None))
    return rows

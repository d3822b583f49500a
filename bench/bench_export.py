"""Sales export: `flask leads export --output FILE` over a million qualified leads.

BENCH_EXPORT_LEADS (1,000,000) leads in stage mql, each with the history the export's columns
read (a stage change for `stage_since`, a `form_submitted` event with UTM data for
`utm_source`), a third of them owned by a sales user, bulk-loaded on PostgreSQL. The real
command runs in a subprocess; rows/s is rows written ÷ its wall time (start-up included) and
peak memory is the subprocess's own maximum RSS (`os.wait4`). Targets from the issue:
≥ 50,000 rows/s and < 200 MB. The start-up of the same command exporting nothing is shown too.
"""

from __future__ import annotations

import sys

from bench.lib import Context, Row
from bench.scratch import env_int, flask_cmd, insert_select, load_leads, run_measured, scratch_db

DB_NAME = "kindling_bench_export"
REDIS_DB = 11
RATE_TARGET = 50_000.0  # rows/s
RSS_TARGET_MB = 200.0


def _history(scratch, count: int) -> None:
    from app.auth.models import User
    from app.leads.models import Event, StageChange

    insert_select(scratch, User, {
        "id": "g", "email": "'sales' || g || '@example.com'", "name": "'Sales ' || g",
        "password_hash": "'!'", "role": "'sales'", "active": "true"},
        "generate_series(1, 3) AS g")
    scratch.execute("UPDATE leads SET owner_id = 1 + id % 3 WHERE id % 3 = 0")
    step = 250_000
    for start in range(1, count + 1, step):
        series = f"generate_series({start}, {min(start + step - 1, count)}) AS g"
        insert_select(scratch, StageChange, {
            "lead_id": "g", "from_stage": "'lead'", "to_stage": "'mql'",
            "changed_at": "now() - (g % 90) * interval '1 day'",
            "reason": "'engagement 55 ≥ 50 and fit B ≥ C'", "actor": "'scoring'"},
            series, reset_id=False)
        insert_select(scratch, Event, {
            "lead_id": "g", "type": "'form_submitted'",
            "occurred_at": "now() - (g % 120) * interval '1 day'",
            "data": "jsonb_build_object('form', 'Demo request', 'utm', jsonb_build_object("
                    "'utm_source', (ARRAY['google','linkedin','newsletter','=cmd|calc'])"
                    "[1 + g % 4], 'utm_medium', 'cpc'))",
            "is_bot": "false"}, series, reset_id=False)


def run(ctx: Context) -> list[Row]:
    count = env_int("BENCH_EXPORT_LEADS", 1_000_000)
    out = ctx.tmp / "export.csv"
    rows: list[Row] = []
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB) as scratch:
        startup = run_measured(flask_cmd("leads", "export", "--stage", "mql", "--output",
                                         str(out)), scratch.env, timeout=120)
        if startup.returncode != 0:
            raise RuntimeError(f"flask leads export failed:\n{startup.output[-2000:]}")
        print(f"  export: loading {count:,} leads with history ...", file=sys.stderr, flush=True)
        load_leads(scratch, count, stage="mql")
        _history(scratch, count)
        scratch.execute("ANALYZE leads", "ANALYZE events", "ANALYZE stage_changes",
                        "ANALYZE users")

        done = run_measured(flask_cmd("leads", "export", "--stage", "mql", "--output", str(out)),
                            scratch.env, timeout=1200)
        if done.returncode != 0:
            raise RuntimeError(f"flask leads export failed:\n{done.output[-2000:]}")
        with open(out, "rb") as fh:
            written = sum(1 for _ in fh) - 1  # the header
        size_mb = out.stat().st_size / 1e6
        out.unlink()
        rate = written / done.seconds
        ok_rate = rate >= RATE_TARGET and written == count
        rows.append(Row(f"leads export: {written:,} mql leads to a file (PostgreSQL, subprocess "
                        "wall time)",
                        f"≥ {RATE_TARGET:,.0f} rows/s",
                        f"{rate:,.0f} rows/s ({done.seconds:.1f} s, {size_mb:.0f} MB of CSV)",
                        rate / RATE_TARGET, ok_rate))
        rows.append(Row("leads export: peak memory of the export process (max RSS)",
                        f"< {RSS_TARGET_MB:.0f} MB", f"{done.max_rss_mb:.0f} MB",
                        done.max_rss_mb / RSS_TARGET_MB, done.max_rss_mb < RSS_TARGET_MB))
        rows.append(Row("  reference: the same command exporting nothing (start-up, RSS)", "—",
                        f"{startup.seconds:.1f} s, {startup.max_rss_mb:.0f} MB", None, None))
    return rows

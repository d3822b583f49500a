"""Privacy and storage (issue 14): bytes per event, prune speed, and inserts during a prune.

On PostgreSQL, BENCH_PRIVACY_EVENTS (default 1,000,000; the issue's figure is 10,000,000, scaled
down so the run fits beside the others: set it to 10000000 for the full size) events with the
production mix the tracking writer and the SendGrid webhook write: opens (a third machine
opens), clicks (with the link's URL, the browser id for people), deliveries, sends, page views;
`data` as the writer fills it (`send_id`, `step_id`, `sequence_id`, `source`, …), dedupe keys
`t:<hit>` / `sg:<event id>`.

- bytes per event: (table + its TOAST + every index) ÷ rows, and the index share. Target < 200.
- prune: every event made older than its retention, then `app.privacy.retention.prune` (after
  the rollups) deletes them in its batches; rows deleted per second of the delete phase.
  Target ≥ 50,000 rows/s.
- inserts during the prune: a second connection inserts one event at a time, as the tracking
  writer does, all through the delete phase; the slowest insert. Target ≤ 100 ms.
"""

from __future__ import annotations

import sys
import threading
import time

from bench.lib import Context, Row
from bench.scratch import env_int, insert_select, load_leads, scratch_db

DB_NAME = "kindling_bench_privacy"
REDIS_DB = 12


def _load(scratch, events: int, leads: int) -> None:
    from app.leads.models import Event

    kind = ("(ARRAY['email_opened','email_opened','email_opened','email_clicked',"
            "'email_delivered','email_delivered','email_sent','page_viewed','page_viewed',"
            "'email_opened'])[1 + g % 10]")
    step = 500_000
    for start in range(1, events + 1, step):
        end = min(events, start + step - 1)
        insert_select(scratch, Event, {
            "lead_id": f"(g::bigint * 7919) % {leads} + 1", "type": kind,
            "occurred_at": "now() - ((g::bigint * 104729) % 31536000) * interval '1 second'",
            "url": "CASE WHEN g % 10 = 3 THEN 'https://acme.example.com/guide?utm_source="
                   "kindling&utm_medium=email' WHEN g % 10 IN (7, 8) THEN "
                   "'https://acme.example.com/pricing' END",
            "visitor_id": "CASE WHEN g % 10 IN (3, 7, 8) AND g % 3 <> 0 THEN "
                          "md5(g::text) END",
            "data": "CASE WHEN g % 10 IN (7, 8) THEN '{}'::jsonb ELSE jsonb_build_object("
                    "'send_id', (g / 3)::text, 'step_id', 1 + g % 5, 'sequence_id', 1 + g % 3, "
                    "'source', CASE WHEN g % 10 = 3 THEN 'link' WHEN g % 10 IN (4, 5) "
                    "THEN 'webhook' ELSE 'pixel' END) END",
            "is_bot": "g % 10 IN (0, 9) AND g % 3 = 0",
            "bot_reason": "CASE WHEN g % 10 IN (0, 9) AND g % 3 = 0 THEN 'apple privacy proxy' "
                          "END",
            "dedupe_key": "CASE WHEN g % 10 IN (4, 5) THEN 'sg:' || md5(g::text) "
                          "WHEN g % 10 IN (7, 8) THEN NULL ELSE 't:' || md5(g::text) END"},
            f"generate_series({start}, {end}) AS g", reset_id=False)
    scratch.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), "
                    "(SELECT max(id) FROM events))", "VACUUM ANALYZE events")


def _bytes_per_event(scratch) -> tuple[float, float, int]:
    rows = scratch.scalar("SELECT count(*) FROM events")
    total = scratch.scalar("SELECT pg_total_relation_size('events')")
    indexes = scratch.scalar("SELECT pg_indexes_size('events')")
    return total / max(rows, 1), indexes / max(rows, 1), rows


class _Inserter(threading.Thread):
    """One event at a time on its own connection, as the tracking writer's small batches."""

    def __init__(self, scratch):
        super().__init__(daemon=True)
        self.scratch = scratch
        self.stop = threading.Event()
        self.slowest = 0.0
        self.count = 0

    def run(self) -> None:
        from app.leads.event_types import code_of

        opened = code_of("email_opened")
        with self.scratch.connect() as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute("INSERT INTO events (lead_id, type, occurred_at, data, is_bot) "
                             f"VALUES (1, {opened}, now(), '{{\"send_id\": \"1\"}}', false)")
                self.slowest = max(self.slowest, time.perf_counter() - started)
                self.count += 1
                time.sleep(0.005)


def run(ctx: Context) -> list[Row]:
    events = env_int("BENCH_PRIVACY_EVENTS", 1_000_000)
    leads = max(1000, events // 20)
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB) as scratch:
        print(f"  privacy: loading {leads} leads and {events} events", file=sys.stderr)
        began = time.perf_counter()
        load_leads(scratch, leads)
        _load(scratch, events, leads)
        print(f"  privacy: loaded in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        per_event, per_index, rows = _bytes_per_event(scratch)
        app = scratch.app()
        with app.app_context():
            from app.privacy import retention
            from app.reports import rollup

            began = time.perf_counter()
            rollup.refresh()  # what the nightly prune does first, timed apart from the deletes
            rollup.refresh()
            print(f"  privacy: rollups in {time.perf_counter() - began:.0f} s", file=sys.stderr)
            # Everything older than a day goes, whatever its type: the worst case for a prune.
            app.config["PRIVACY_EVENT_RETENTION"] = {
                f"{t}{suffix}": 1 for t in ("email_opened", "email_clicked", "email_delivered",
                                            "email_sent", "page_viewed")
                for suffix in ("", ":machine")}
            inserter = _Inserter(scratch)
            inserter.start()
            started = time.perf_counter()
            report = retention.prune()
            seconds = time.perf_counter() - started
            inserter.stop.set()
            inserter.join()
        deleted = sum(report.events.values())
    rate = deleted / report.delete_seconds if report.delete_seconds else 0.0
    scale = "" if events >= 10_000_000 else f" (scaled down: {events:,} events)"
    return [
        Row(f"bytes per event on PostgreSQL, production mix{scale}", "< 200 B",
            f"{per_event:.0f} B ({per_index:.0f} B in indexes), {rows:,} rows", None,
            per_event < 200),
        Row(f"privacy prune, rollups already current{scale}", "≥ 50,000 rows/s",
            f"{rate:,.0f} rows/s ({deleted:,} rows deleted in {report.delete_seconds:.1f} s; "
            f"the whole prune {seconds:.1f} s)", None, rate >= 50_000),
        Row("slowest single insert during the prune", "≤ 100 ms",
            f"{inserter.slowest * 1000:.0f} ms over {inserter.count:,} inserts", None,
            inserter.slowest <= 0.1),
    ]

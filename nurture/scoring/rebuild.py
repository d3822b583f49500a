"""Recompute every lead after a rules change, in batches, in constant memory.

Per batch of leads (by id): one read of the profile columns, one read of their human events
ordered by lead and time as plain tuples (only the columns scoring needs, straight from the
driver: no ORM objects, no result processing), the same rules and arithmetic as the
incremental job (`compute.BatchScorer`), then bulk writes: one UPDATE of the leads whose
scores changed, one upsert of their score rows, and the MQL moves of the batch together
(their `StageChange` rows with the reason, the stage listeners' outbox rows), one commit, and
the outbox rows enqueued by `app.outbox.dispatch_committed` (Redis pipelines).
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import operator
import queue as queue_module
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app import outbox
from app.db import db, utcnow
from app.leads import engagement
from app.leads.event_columns import with_send_sql
from app.leads.models import Lead, Stage, StageChange
from nurture.scoring.compute import EV_ID, BatchScorer, Score
from nurture.scoring.models import LeadScore
from nurture.scoring.rules import Rules
from nurture.scoring.service import (
    ACTOR,
    ELIGIBLE_STAGES,
    ActiveRules,
    active_rules,
    recycled_since,
)

log = logging.getLogger(__name__)

LEAD_COLUMNS = (Lead.id, Lead.email, Lead.first_name, Lead.last_name, Lead.company,
                Lead.job_title, Lead.phone, Lead.country, Lead.attributes, Lead.stage,
                Lead.fit_score, Lead.engagement_score)
BATCH_SIZE = 5000
_ID = operator.itemgetter(EV_ID)
_LEAD = operator.itemgetter(0)

# (lead row, score, newest event id, event count)
Result = tuple[Any, Score, "int | None", int]


@dataclass
class RebuildStats:
    version: int = 0
    leads: int = 0
    events: int = 0
    changed: int = 0
    promoted: int = 0


def count_leads() -> int:
    return db.session.scalar(sa.select(sa.func.count(Lead.id))) or 0


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def lead_batches(batch_size: int, *where: Any) -> Iterator[list[Any]]:
    """Lead rows (LEAD_COLUMNS) by ascending id, `batch_size` at a time (keyset paging)."""
    after = 0
    while True:
        leads = db.session.execute(
            sa.select(*LEAD_COLUMNS).where(Lead.id > after, *where).order_by(Lead.id)
            .limit(batch_size)
        ).all()
        if not leads:
            return
        yield list(leads)
        after = leads[-1].id


def _event_sql(rules: Rules, postgres: bool, since: datetime | None = None,
               types: Iterable[str] | None = None) -> str:
    """The human events of a range of leads, as rebuild tuples (`compute.EV_*`), ordered by
    lead, time and id. Two integer placeholders: the lowest and highest lead id. `since`
    (aware): only events from then on (the what-if replay's window). `types`: only events of
    these types (the replay's: those some rule counts)."""
    at = "timezone('UTC', occurred_at)" if postgres else "occurred_at"
    # The data with the email it is about put back in (send_id / step_id are columns).
    data = with_send_sql(postgres) if rules.needs_event_data else "NULL"
    mark = "%s" if postgres else "?"
    window = ""
    if since is not None:  # a time we made, never user input: safe as a literal
        stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        window = f" AND occurred_at >= '{stamp}{'+00' if postgres else ''}'"
    from app.leads.event_types import code_of, sql_name

    if types is not None:  # integer codes: safe as literals
        window += f" AND type IN ({', '.join(str(code_of(t)) for t in sorted(types)) or 'NULL'})"

    return (f"SELECT lead_id, id, {sql_name('events.type')}, {at}, url, campaign_id, {data} "
            "FROM events "
            f"WHERE lead_id BETWEEN {mark} AND {mark} AND is_bot = {'false' if postgres else '0'}"
            f"{window} ORDER BY lead_id, occurred_at, id")


def _read_events(sql: str, low: int, high: int, postgres: bool) -> list[tuple]:
    cursor = db.session.connection().connection.cursor()
    try:
        cursor.execute(sql, (int(low), int(high)))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not postgres:  # SQLite hands back text: naive UTC ISO times, JSON documents
        rows = [(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], r[5],
                 json.loads(r[6]) if isinstance(r[6], str) else r[6]) for r in rows]
    return list(rows)


class _RangeReader:
    """The events of each batch's id range, one query per batch (SQLite)."""

    def __init__(self, rules: Rules, since: datetime | None = None,
                 types: Iterable[str] | None = None) -> None:
        self._sql = _event_sql(rules, postgres=False, since=since, types=types)

    def take(self, low: int, high: int) -> list[tuple]:
        return _read_events(self._sql, low, high, postgres=False)

    def close(self) -> None:
        pass


class _StreamReader:
    """Every human event of every lead, ordered by lead, time and id, from one server-side
    cursor on a connection of its own (the batches commit on the session's), read in large
    chunks: one ordered pass over the log instead of one scan per batch (the log is
    interleaved, so each batch's rows are spread over the whole table)."""

    CHUNK = 50_000

    def __init__(self, rules: Rules, since: datetime | None = None,
                 types: Iterable[str] | None = None) -> None:
        sql = _event_sql(rules, postgres=True, since=since, types=types).replace(
            "lead_id BETWEEN %s AND %s", "lead_id IS NOT NULL")
        self._connection = db.engine.connect()
        try:
            raw = self._connection.connection.driver_connection
            assert raw is not None
            if since is not None:
                # Every row is read: let the planner take the window's rows by time and sort
                # them, not walk the whole log in lead order because that returns a first row
                # sooner (a cursor's default plan, cursor_tuple_fraction 0.1).
                raw.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            self._cursor = raw.cursor(name="kindling_scores_rebuild")
            self._cursor.itersize = self.CHUNK
            self._cursor.execute(sql)
        except Exception:
            self._connection.close()
            raise
        self._rows: list[tuple] = []
        self._pos = 0
        self._done = False

    def take(self, low: int, high: int) -> list[tuple]:
        """The events of leads up to `high` not taken yet (calls go up in id order)."""
        out: list[tuple] = []
        while True:
            if self._pos >= len(self._rows):
                if self._done:
                    return out
                self._rows = self._cursor.fetchmany(self.CHUNK)
                self._pos = 0
                if not self._rows:
                    self._done = True
                    return out
            end = bisect.bisect_right(self._rows, high, lo=self._pos, key=_LEAD)
            out.extend(self._rows[self._pos:end])
            self._pos = end
            if end < len(self._rows):
                return out

    def close(self) -> None:
        try:
            self._cursor.close()
        finally:
            self._connection.close()


def _event_reader(rules: Rules, since: datetime | None = None,
                  types: Iterable[str] | None = None) -> _RangeReader | _StreamReader:
    return (_StreamReader(rules, since, types) if _postgres()
            else _RangeReader(rules, since, types))


def assess_batch(leads: list[Any], rules: Rules, now: datetime, *,
                 scorer: BatchScorer | None = None,
                 reader: _RangeReader | _StreamReader | None = None) -> list[Result]:
    """(lead row, score, newest event id, event count) for a batch of lead rows."""
    scorer = scorer or BatchScorer(rules, now)
    postgres = _postgres()
    low, high = leads[0].id, leads[-1].id
    if reader is None:
        events = _read_events(_event_sql(rules, postgres), low, high, postgres)
    else:
        events = reader.take(low, high)
    by_lead = {lead_id: list(rows) for lead_id, rows in itertools.groupby(events, key=_LEAD)}
    del events
    recycled = recycled_since(between=(low, high))  # engagement resets
    results = []
    empty: list[tuple] = []
    for lead in leads:
        lead_events = by_lead.get(lead.id, empty)
        result = scorer.score(lead, lead_events, since=recycled.get(lead.id),
                              decide=lead.stage in ELIGIBLE_STAGES)
        newest = max(map(_ID, lead_events)) if lead_events else None
        results.append((lead, result, newest, len(lead_events)))
    return results


# Writing a batch back.

_UPDATE_LEADS_PG = sa.text(
    "UPDATE leads AS l SET fit_score = v.fit, engagement_score = v.eng, updated_at = :now, "
    "engagement_at = :now, engagement_key = v.ekey "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:fits AS integer[]), "
    "CAST(:engs AS double precision[]), CAST(:keys AS double precision[])) "
    "AS v(id, fit, eng, ekey) WHERE l.id = v.id")
_UPSERT_SCORES_PG = sa.text(
    "INSERT INTO lead_scores (lead_id, ruleset_version, fit_points, fit_grade, engagement, "
    "computed_at, last_event_id) "
    "SELECT v.id, :version, v.fit, v.grade, v.eng, :now, v.newest "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:fits AS integer[]), CAST(:grades AS text[]), "
    "CAST(:engs AS double precision[]), CAST(:newest AS bigint[])) "
    "AS v(id, fit, grade, eng, newest) "
    "ON CONFLICT (lead_id) DO UPDATE SET ruleset_version = EXCLUDED.ruleset_version, "
    "fit_points = EXCLUDED.fit_points, fit_grade = EXCLUDED.fit_grade, "
    "engagement = EXCLUDED.engagement, computed_at = EXCLUDED.computed_at, "
    "last_event_id = EXCLUDED.last_event_id")


def _store_scores(results: list[Result], active: ActiveRules, now: datetime) -> int:
    """Leads' stored scores (where they changed) and every score row. Returns how many
    leads' scores changed."""
    # Every lead's engagement is stored as of `now` (it decays from there), so each row is
    # written even when the number is the same as before.
    changed = [(lead.id, r.fit_points, r.engagement) for lead, r, _, _ in results]
    half_life = active.rules.half_life_days
    if _postgres():
        if changed:
            ids, fits, engs = map(list, zip(*changed))
            keys = [engagement.key_for(e, now, half_life) for e in engs]
            db.session.execute(_UPDATE_LEADS_PG, {"ids": ids, "fits": fits, "engs": engs,
                                                  "keys": keys, "now": now})
        db.session.execute(_UPSERT_SCORES_PG, {
            "version": active.version, "now": now,
            "ids": [lead.id for lead, *_ in results],
            "fits": [r.fit_points for _, r, _, _ in results],
            "grades": [r.fit_grade for _, r, _, _ in results],
            "engs": [r.engagement for _, r, _, _ in results],
            "newest": [newest for _, _, newest, _ in results]})
        return len(changed)
    if changed:
        db.session.execute(sa.update(Lead), [
            {"id": lead_id, "fit_score": fit, **engagement.values(eng, now, half_life)}
            for lead_id, fit, eng in changed])
    ids = [lead.id for lead, *_ in results]
    db.session.execute(sa.delete(LeadScore).where(LeadScore.lead_id.in_(ids)))
    db.session.execute(sa.insert(LeadScore), [
        {"lead_id": lead.id, "ruleset_version": active.version, "fit_points": r.fit_points,
         "fit_grade": r.fit_grade, "engagement": r.engagement, "computed_at": now,
         "last_event_id": newest}
        for lead, r, newest, _ in results
    ])
    return len(changed)


_MOVE_PG = sa.text(
    "WITH locked AS (SELECT id, stage FROM leads WHERE id = ANY(CAST(:ids AS bigint[])) "
    "AND stage = ANY(CAST(:eligible AS text[])) ORDER BY id FOR UPDATE), "
    "moved AS (UPDATE leads AS l SET stage = :to_stage, updated_at = :now FROM locked "
    "WHERE l.id = locked.id RETURNING l.id, locked.stage AS from_stage) "
    "INSERT INTO stage_changes (lead_id, from_stage, to_stage, changed_at, reason, actor, "
    "actor_user_id) "
    "SELECT moved.id, moved.from_stage, :to_stage, :now, r.reason, :actor, NULL "
    "FROM moved JOIN unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS r(id, reason) "
    "ON r.id = moved.id ORDER BY moved.id RETURNING id")
_OUTBOX_PG = sa.text(
    "INSERT INTO outbox_jobs (job, args, queue, dedupe_key, created_at, attempts) "
    "SELECT j.path, jsonb_build_array(c.id), 'default', j.path || ':' || c.id, :now, 0 "
    "FROM unnest(CAST(:changes AS bigint[])) WITH ORDINALITY AS c(id, n) "
    "CROSS JOIN unnest(CAST(:paths AS text[])) WITH ORDINALITY AS j(path, k) "
    "ORDER BY c.n, j.k RETURNING id")


def _promote(qualified: dict[int, str]) -> int:
    """Move these leads (id -> reason) to MQL, as `service.promote` / `change_stage` does one
    at a time: only from an eligible stage (checked again under a row lock), a `StageChange`
    per move with the reason, and an outbox row per stage listener, enqueued after commit.
    Returns how many moved."""
    if qualified:  # a lead awaiting its double opt-in confirmation does not qualify
        awaiting = set(db.session.scalars(sa.select(Lead.id).where(
            Lead.id.in_(list(qualified)), Lead.awaiting_confirmation.is_(True))))
        qualified = {k: v for k, v in qualified.items() if k not in awaiting}
    if not qualified:
        return 0
    ids = sorted(qualified)
    eligible = sorted(ELIGIBLE_STAGES)
    to_value = Stage.MQL.value
    listeners = list(current_app.extensions.get("stage_listeners", []))
    if _postgres():
        now = utcnow()
        changes = db.session.execute(_MOVE_PG, {
            "ids": ids, "reasons": [qualified[i] for i in ids], "eligible": eligible,
            "to_stage": to_value, "now": now, "actor": ACTOR}).scalars().all()
        if changes and listeners:
            new = db.session.execute(_OUTBOX_PG, {"changes": list(changes), "paths": listeners,
                                                  "now": now}).scalars().all()
            # As `outbox.add` does: committed with the batch, forgotten on a rollback.
            db.session.info.setdefault("outbox_new", []).extend(new)
        return len(changes)
    current = db.session.execute(
        sa.select(Lead.id, Lead.stage).where(Lead.id.in_(ids), Lead.stage.in_(eligible))
        .order_by(Lead.id).with_for_update()
    ).all()
    if not current:
        return 0
    db.session.execute(sa.update(Lead).where(Lead.id.in_([lead_id for lead_id, _ in current]))
                       .values(stage=to_value, updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    changes = db.session.execute(
        sa.insert(StageChange).returning(StageChange.id, sort_by_parameter_order=True),
        [{"lead_id": lead_id, "from_stage": stage, "to_stage": to_value,
          "reason": qualified[lead_id], "actor": ACTOR, "actor_user_id": None,
          "changed_at": utcnow()} for lead_id, stage in current],
    ).scalars().all()
    if listeners:
        jobs = [{"job": path, "args": [change_id], "queue": "default",
                 "dedupe_key": f"{path}:{change_id}", "created_at": utcnow()}
                for change_id in changes for path in listeners]
        new = db.session.execute(
            sa.insert(outbox.OutboxJob).returning(outbox.OutboxJob.id,
                                                  sort_by_parameter_order=True), jobs
        ).scalars().all()
        db.session.info.setdefault("outbox_new", []).extend(new)
    return len(changes)


def _write(results: list[Result], active: ActiveRules, now: datetime) -> tuple[int, int]:
    """Store a batch's scores and MQL moves, commit, enqueue the moves' outbox rows.
    Returns (leads whose scores changed, leads moved to MQL)."""
    changed = _store_scores(results, active, now)
    promoted = _promote({lead.id: r.mql_reason for lead, r, _, _ in results
                         if r.mql_reason and lead.stage in ELIGIBLE_STAGES})
    db.session.commit()
    if promoted:  # the per-lead line of `change_stage`, for a batch moved at once
        log.info("stage change: %d leads → mql by scoring (rebuild)", promoted)
    outbox.dispatch_committed()  # the stage listeners of the MQL moves
    return changed, promoted


class _Writer:
    """Writes batches on a thread of its own (its own app context, session and connection)
    while the caller reads and scores the next one: the database works on one batch while
    Python scores the other. One batch waits at most; an error stops the rebuild."""

    def __init__(self, active: ActiveRules, now: datetime, stats: RebuildStats,
                 progress: Callable[[int], None] | None) -> None:
        self._app = current_app._get_current_object()  # type: ignore[attr-defined]
        self._active, self._now, self._stats, self._progress = active, now, stats, progress
        self._queue: queue_module.Queue[list[Result] | None] = queue_module.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scores-rebuild-writer",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._app.app_context():
            try:
                while (results := self._queue.get()) is not None:
                    if self._error is None:
                        self._apply(results)
            finally:
                db.session.remove()

    def _apply(self, results: list[Result]) -> None:
        try:
            changed, promoted = _write(results, self._active, self._now)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc
            db.session.rollback()
            return
        self._stats.changed += changed
        self._stats.promoted += promoted
        self._stats.leads += len(results)
        self._stats.events += sum(count for *_, count in results)
        if self._progress is not None:
            self._progress(len(results))

    def put(self, results: list[Result]) -> None:
        self._raise()
        self._queue.put(results)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def rebuild(*, batch_size: int = BATCH_SIZE, now: datetime | None = None,
            progress: Callable[[int], None] | None = None) -> RebuildStats:
    """Rescore every lead with the active rules. Commits after each batch."""
    now = now or utcnow()
    active = active_rules()
    scorer = BatchScorer(active.rules, now)
    stats = RebuildStats(version=active.version)
    reader = _event_reader(active.rules)
    writer = _Writer(active, now, stats, progress) if _postgres() else None
    try:
        for leads in lead_batches(batch_size):
            results = assess_batch(leads, active.rules, now, scorer=scorer, reader=reader)
            if writer is not None:
                db.session.commit()  # end the read; the writer has its own transaction
                writer.put(results)
                continue
            changed, promoted = _write(results, active, now)
            stats.changed += changed
            stats.promoted += promoted
            stats.leads += len(leads)
            stats.events += sum(count for *_, count in results)
            if progress is not None:
                progress(len(leads))
    finally:
        try:
            if writer is not None:
                writer.close()
        finally:
            reader.close()
    return stats


def preview(rules: Rules, *, now: datetime | None = None,
            batch_size: int = BATCH_SIZE) -> tuple[int, int]:
    """(leads that would move to MQL, leads scoring may move) if `rules` were active now.
    Recomputes from events like `rebuild`, writing nothing."""
    now = now or utcnow()
    scorer = BatchScorer(rules, now)
    qualify = eligible = 0
    reader = _event_reader(rules)
    try:
        for leads in lead_batches(batch_size, Lead.stage.in_(sorted(ELIGIBLE_STAGES))):
            eligible += len(leads)
            qualify += sum(1 for _, result, _, _ in assess_batch(leads, rules, now,
                                                                 scorer=scorer, reader=reader)
                           if result.mql_reason)
    finally:
        reader.close()
    return qualify, eligible

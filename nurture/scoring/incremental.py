"""Score leads as their events arrive: observe new Event rows, enqueue jobs for their leads.

- `after_flush` notes the leads of new human events (and of events newly attached to a lead);
  `after_commit` enqueues `nurture.scoring.jobs.score_lead` for one, `score_leads` for several
  (up to BATCH a job), on the `scoring` queue: a chunk of nurture sends costs the scoring
  worker one work-horse, not one per lead.
- Coalesced: a Redis `SET NX` key per lead (with a TTL) marks a pending job; more events
  before the job starts add nothing. The job clears the keys when it starts, so events that
  arrive while it runs get a job of their own.
- Redis trouble never fails the commit that wrote the events: errors are logged and Redis is
  left alone for a short while; the periodic `sweep` rescores every lead whose newest human
  event is newer than the last event its score saw.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from redis.exceptions import RedisError
from sqlalchemy.orm import Session, attributes

from app import queue
from app.db import db
from app.leads.models import Event
from nurture.scoring.models import LeadScore

log = logging.getLogger(__name__)

JOB = "nurture.scoring.jobs.score_lead"  # one lead
BATCH_JOB = "nurture.scoring.jobs.score_leads"  # several, up to BATCH
BATCH = 100
QUEUE = "scoring"
PENDING_TTL = 600  # seconds; a lost job stops blocking its lead after this (the sweep covers it)
JOB_TIMEOUT = 120
REDIS_BACKOFF = 30.0  # seconds without trying Redis after a failure
SWEEP_FLOOR_KEY = "kindling:scoring:sweep-floor"
_SESSION_KEY = "scoring_lead_ids"

_redis_down_until = 0.0

# SET NX EX on every key; the (1-based) positions of the keys that were not set before. One
# command for a thousand leads, where a pipeline of SETs costs the client a command object each.
_MARK_SCRIPT = """
local fresh = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) then fresh[#fresh + 1] = i end
end
return fresh
"""


def pending_key(lead_id: int) -> str:
    return f"kindling:scoring:pending:{lead_id}"


def _enabled() -> bool:
    return has_app_context() and "scoring" in current_app.extensions


def _collect(session: Session, flush_context: Any) -> None:
    """Remember the leads whose human activity this flush wrote."""
    found = set()
    for obj in session.new:
        if isinstance(obj, Event) and obj.lead_id is not None and not obj.is_bot:
            found.add(obj.lead_id)
    for obj in session.dirty:
        if (isinstance(obj, Event) and obj.lead_id is not None and not obj.is_bot
                and attributes.get_history(obj, "lead_id").added):
            found.add(obj.lead_id)
    if found:
        session.info.setdefault(_SESSION_KEY, set()).update(found)


def _after_commit(session: Session) -> None:
    lead_ids = session.info.pop(_SESSION_KEY, None)
    if lead_ids and _enabled():
        enqueue_scoring(lead_ids)


def _after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's: the leads of the events flushed before it still need scoring
    session.info.pop(_SESSION_KEY, None)


def enqueue_scoring(lead_ids: Any) -> int:
    """Enqueue scoring for each lead that has none pending (a job per BATCH of them). Returns
    how many leads were enqueued. Never raises for Redis: the sweep catches up. Two Redis round trips whatever
    the number of leads: the pending marks (`SET NX`) in one script, the jobs in a pipeline."""
    global _redis_down_until
    if time.monotonic() < _redis_down_until:
        return 0
    ids = sorted(set(lead_ids))
    if not ids:
        return 0
    conn = queue.connection()
    try:
        # A lead whose mark was already set has a job waiting: it will see these events.
        fresh = conn.register_script(_MARK_SCRIPT)(keys=[pending_key(lead_id) for lead_id in ids],
                                                   args=[PENDING_TTL])
        marked = [ids[int(index) - 1] for index in fresh]
        if marked:
            _enqueue_jobs(conn, marked)
    except RedisError as exc:
        _redis_down_until = time.monotonic() + REDIS_BACKOFF
        log.warning("scoring jobs not enqueued (%s); the sweep will rescore", exc)
        return 0
    return len(marked)


def _enqueue_jobs(conn: Any, lead_ids: list[int]) -> None:
    """A job per BATCH leads, in one round trip; on failure their pending marks go too, so
    later events retry."""
    arg_tuples: list[tuple[Any, ...]]
    if len(lead_ids) == 1:
        job, arg_tuples = JOB, [(lead_ids[0],)]
    else:
        job = BATCH_JOB
        arg_tuples = [(lead_ids[i:i + BATCH],) for i in range(0, len(lead_ids), BATCH)]
    try:
        queue.enqueue_many(job, arg_tuples, queue=QUEUE, timeout=JOB_TIMEOUT, result_ttl=0,
                           description=_describe)
    except RedisError:
        try:
            conn.delete(*[pending_key(lead_id) for lead_id in lead_ids])
        except RedisError:
            pass  # the marks expire after PENDING_TTL; the sweep covers those leads
        raise


def _describe(args: tuple) -> str:
    if isinstance(args[0], int):
        return f"score lead {args[0]}"
    ids = args[0]
    return "score leads " + ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")


def enqueue_for(lead_ids: Any) -> int:
    """For writers that bypass the ORM (so `after_flush` never sees their events, e.g. the
    nurture chunk runner): enqueue scoring for these leads, when scoring is on."""
    return enqueue_scoring(lead_ids) if _enabled() else 0


def release(*lead_ids: int) -> None:
    """Called when a scoring job starts: later events need (and get) a new job."""
    if not lead_ids:
        return
    try:
        queue.connection().delete(*[pending_key(lead_id) for lead_id in lead_ids])
    except RedisError as exc:
        log.warning("could not clear the pending marks of leads %s (%s)", lead_ids, exc)


def stale_lead_ids(floor: int = 0, limit: int = 500) -> list[int]:
    """Leads with a human event (id above `floor`) newer than the last one their score saw."""
    newest = sa.func.max(Event.id)
    rows = db.session.execute(
        sa.select(Event.lead_id, newest)
        .outerjoin(LeadScore, LeadScore.lead_id == Event.lead_id)
        .where(Event.id > floor, Event.lead_id.is_not(None), Event.is_bot.is_(False),
               sa.or_(LeadScore.last_event_id.is_(None), Event.id > LeadScore.last_event_id))
        .group_by(Event.lead_id)
        .order_by(newest)
        .limit(limit)
    ).all()
    return [lead_id for lead_id, _ in rows if lead_id is not None]


def sweep_floor() -> tuple[int, int]:
    """(floor, candidate): events up to `floor` are all scored. The candidate is the newest
    event id of the previous clean sweep: it becomes the floor one sweep later, so an event
    committed late by a long transaction (with a smaller id) is still looked at."""
    try:
        raw = queue.connection().get(SWEEP_FLOOR_KEY)
    except RedisError:
        return 0, 0
    if not raw:
        return 0, 0
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    floor, _, candidate = text.partition(":")
    return int(floor or 0), int(candidate or 0)


def set_sweep_floor(floor: int, candidate: int) -> None:
    try:
        queue.connection().set(SWEEP_FLOOR_KEY, f"{floor}:{candidate}")
    except RedisError:
        pass


def init_app(app: Any) -> None:
    from app.leads.service import add_events_listener

    app.extensions["scoring"] = True
    add_events_listener(app, enqueue_for)  # bulk writers in the core (the API's events)
    if not sa.event.contains(Session, "after_flush", _collect):
        sa.event.listen(Session, "after_flush", _collect)
        sa.event.listen(Session, "after_commit", _after_commit)
        sa.event.listen(Session, "after_rollback", _after_rollback)

"""The submit path's only write: one intake row, committed, then a best-effort kick.

    validate (WTForms) → spam signals → INSERT intake (autocommit: one round trip) → 303 / 202

Nothing else runs while the visitor waits: the lead, the submission, the event and the follow-up
work are made by the intake processor (`forms.processor`), kicked here without waiting on Redis
and swept by the scheduler. The same post again within the duplicate window hits the row's
unique `dedupe_key` and gets the first row back. When the database refuses the row, the
submission goes to the local spill journal (`forms.spill`) and is replayed later.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from app.db import db, utcnow
from forms.builder import EMBED_TOKEN, TIMESTAMP, normalised_email
from forms.models import Form, Intake, IntakeStatus, SubmissionStatus
from forms.pipeline import (
    DUPLICATE_WINDOW,
    Context,
    _capped,
    fingerprint,
    split_values,
    storable,
)

log = logging.getLogger(__name__)

PROCESS_JOB = "forms.jobs.process_intake"
PROCESS_QUEUE = "intake"  # taken right after first-steps (RQ_QUEUES), in the worker process
# Set while a kicked processor run waits in the queue; the run clears it when it starts. A lost
# run stops shadowing new kicks after KICK_MARK_SECONDS (the sweep covers the gap).
KICK_MARK = "kindling:intake:kick-pending"
KICK_MARK_SECONDS = 10
# After a kick the thread pauses this long: the submits meanwhile are one kick after it, not a
# Redis round trip each (at hundreds of submits a second, each a wake-up and a SET competing
# with the requests for the CPU).
KICK_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class Receipt:
    """What the visitor is told: the intake id, and what their submission will become."""

    intake_id: str
    status: str  # accepted | pending_confirmation | quarantined, as the processor will decide
    duplicate: bool = False


def dedupe_key(form: Form, data: Mapping[str, Any], suspect: bool, now: float) -> str:
    """Fingerprint (form, normalised email, values) + the duplicate window's bucket; a suspect
    never shadows a person's post of the same values."""
    email, values, _ = split_values(form, data)
    try:
        identity = normalised_email(email)[0]
    except ValueError:
        identity = email
    bucket = int(now // DUPLICATE_WINDOW.total_seconds())
    return f"{fingerprint(form, identity, values)}:{bucket}{':s' if suspect else ''}"


def row_values(form: Form, data: Mapping[str, Any], raw: Mapping[str, Any], ctx: Context,
               suspect_reason: str | None) -> dict[str, Any]:
    """The intake row's columns for one validated submit (JSON-safe)."""
    now = utcnow()
    kept = {k: v for k, v in data.items() if k not in (TIMESTAMP, EMBED_TOKEN, "csrf_token")}
    return {
        "id": uuid.uuid4().hex, "form_id": form.id, "form_version": form.version,
        "channel": ctx.channel, "data": _jsonable(kept), "raw": _capped(raw),
        "consent_text": form.consent_text if form.consent_enabled else "",
        "consent_version": form.consent_version if form.consent_enabled else "",
        "utm_defaults": dict(ctx.utm_defaults), "campaign_id": ctx.campaign_id,
        "landing_page_id": ctx.landing_page_id, "ip": ctx.ip[:45],
        "user_agent": ctx.user_agent[:500], "visitor_id": ctx.visitor_id,
        "suspect_reason": suspect_reason[:200] if suspect_reason else None,
        "dedupe_key": dedupe_key(form, data, bool(suspect_reason), now.timestamp()),
        "received_at": now, "status": "new", "attempts": 0,
    }


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
            for k, v in values.items()}


def expected_status(form: Form, suspect_reason: str | None) -> str:
    if suspect_reason:
        return SubmissionStatus.QUARANTINED.value
    if form.double_opt_in:
        return SubmissionStatus.PENDING.value
    return SubmissionStatus.ACCEPTED.value


def receive(form: Form, data: Mapping[str, Any], raw: Mapping[str, Any], ctx: Context,
            suspect_reason: str | None) -> Receipt:
    """Store one submit as an intake row (one INSERT, committed as it runs) and kick the
    processor."""
    from forms import spill

    values = row_values(form, storable(data), storable(raw), ctx, suspect_reason)
    status = expected_status(form, suspect_reason)
    try:
        intake_id, duplicate = insert(values)
    except REFUSED as exc:  # down, read-only, out of connections: keep it locally
        log.warning("intake: the database refused a submit (%s); kept in the spill journal",
                    type(exc).__name__)
        spill.append(values)
        return Receipt(values["id"], status)
    kick()
    if spill.worth_replaying():  # the database answers again: replay what it refused
        spill.replay_soon()
    return Receipt(intake_id, status, duplicate)


# What the database raises when it cannot take the row: down, read-only, silent past its
# timeouts (the driver's errors), or every pooled connection busy past the pool's timeout.
REFUSED = (sa.exc.DBAPIError, sa.exc.TimeoutError)
_INSERT = sa.insert(Intake.__table__)  # type: ignore[arg-type]


def insert(values: Mapping[str, Any]) -> tuple[str, bool]:
    """(id of the stored row, whether it was already there: the same post in the window).

    One statement on a connection of its own in autocommit: the INSERT is its own
    transaction, so the database gets one round trip (no BEGIN, no COMMIT of their own) and
    the row is durable when it answers. No ORM session is made for it. On PostgreSQL it goes
    to the driver itself (`_insert_postgresql`)."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        return _insert_postgresql(engine, values)
    table = Intake.__table__
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try:
            conn.execute(_INSERT, dict(values))
            return values["id"], False
        except IntegrityError:
            first = conn.scalar(sa.select(table.c.id)
                                .where(table.c.dedupe_key == values["dedupe_key"]))
            if first is None:  # not a duplicate after all (e.g. the id): a real error
                raise
            return first, True


_JSON_COLUMNS = frozenset(name for name, column in Intake.__table__.columns.items()
                          if isinstance(column.type, sa.JSON))
_FIRST_OF_KEY = "SELECT id FROM intake WHERE dedupe_key = %s"


@functools.lru_cache(maxsize=8)
def _insert_sql(names: tuple[str, ...]) -> str:
    for name in names:
        assert name in Intake.__table__.columns, name  # names go into the SQL text
    return (f"INSERT INTO intake ({', '.join(names)}) "
            f"VALUES ({', '.join(f'%({name})s' for name in names)})")


def _insert_postgresql(engine: sa.Engine, values: Mapping[str, Any]) -> tuple[str, bool]:
    """`insert` on psycopg's connection itself, a prepared statement: SQLAlchemy's Connection,
    its execution context and its autocommit option were about 0.3 ms of CPU per submit, half
    of this insert's (and psycopg skips the parse on the server). The pool's checkout still
    runs (the idle ping, the forked-process check); a psycopg error is raised as SQLAlchemy's
    (`REFUSED` spills it), and a lost connection invalidates the pool as SQLAlchemy does."""
    import psycopg
    from psycopg.types.json import Jsonb

    params = {name: Jsonb(value) if name in _JSON_COLUMNS else value
              for name, value in values.items()}
    sql = _insert_sql(tuple(values))
    try:
        pooled = engine.raw_connection()  # unlike Engine.connect, it raises the driver's error
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error) from exc
    conn: Any = pooled.driver_connection
    try:
        conn.autocommit = True
        try:
            conn.execute(sql, params, prepare=True)
            return values["id"], False
        except psycopg.errors.UniqueViolation as exc:
            first = conn.execute(_FIRST_OF_KEY, (values["dedupe_key"],)).fetchone()
            if first is None:  # not a duplicate after all (e.g. the id): a real error
                raise sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error) from exc
            return first[0], True
        finally:
            if not conn.closed:
                conn.autocommit = False
    except psycopg.Error as exc:
        if conn.closed or engine.dialect.is_disconnect(cast(Any, exc), conn, None):
            engine.pool._invalidate(pooled, exc)  # every connection of its age, as SQLAlchemy
        raise sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error) from exc
    finally:
        pooled.close()


# -- the kick: a per-process thread enqueues the processor; the request never waits on Redis --

class _Kicker:
    def __init__(self, app: Flask):
        self.app = app
        self.pid = os.getpid()  # a forked child (a work-horse) starts a thread of its own
        self.wanted = threading.Event()
        self.thread = threading.Thread(target=self._run, name="intake-kick", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            try:
                # The request path's guarded client (app.redisguard), though this thread has
                # no request: a sick Redis costs one short try, then the breaker skips it.
                send_kick(self.app.extensions["redis"])
            except (RedisError, OSError) as exc:  # Redis away: the sweep finds the rows
                log.warning("intake: kick not sent (%s); the sweep will find the rows", exc)
            _pause()


def _pause() -> None:
    time.sleep(KICK_PAUSE_SECONDS)


def send_kick(conn: Any) -> bool:
    """Enqueue a processor run unless one is already waiting: that one takes every row
    committed before it starts (it clears the mark first), so at 50 submits/s the queue gets
    a run now and then, not 50 a second. True when a run was enqueued."""
    from app import queue

    if not conn.set(KICK_MARK, "1", nx=True, ex=KICK_MARK_SECONDS):
        return False
    queue.get_queue(PROCESS_QUEUE, conn=conn).enqueue(PROCESS_JOB, result_ttl=0,
                                                      description="intake processor (kick)")
    return True


_lock = threading.Lock()


def kick() -> None:
    """Ask for a processor run soon, without waiting for anything."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    kicker = app.extensions.get("intake_kicker")
    if kicker is None or kicker.pid != os.getpid():
        with _lock:
            kicker = app.extensions.get("intake_kicker")
            if kicker is None or kicker.pid != os.getpid():
                kicker = _Kicker(app)
                app.extensions["intake_kicker"] = kicker
    kicker.wanted.set()


def rows_of_lead(lead_id: int) -> Any:
    """The intake rows that became a lead's submissions, for access and erasure requests
    (`app.privacy.holders`): a select of their ids."""
    from forms.models import Submission

    return sa.select(Intake.id).where(Intake.id.in_(
        sa.select(Submission.intake_id).where(Submission.lead_id == lead_id,
                                              Submission.intake_id.is_not(None))))


def rows_of_address(identity: str) -> Any:
    """The intake rows of an address (normalised): those that became submissions of it (a
    quarantined one has no lead), and those not made into one yet (waiting for the processor,
    or failed) whose email field holds it. A select of their ids."""
    from forms.models import Submission

    made = sa.select(Submission.intake_id).where(  # a quarantined one keeps it as typed
        sa.func.lower(sa.func.trim(Submission.email)) == identity,
                                                 Submission.intake_id.is_not(None))
    waiting = [row_id for row_id, data in db.session.execute(
        sa.select(Intake.id, Intake.data).where(Intake.status != IntakeStatus.DONE.value))
        if _names(data, identity)]
    return sa.select(Intake.id).where(sa.or_(Intake.id.in_(made), Intake.id.in_(waiting)))


def _names(data: Any, identity: str) -> bool:
    """Whether a row's submitted values hold this address (as typed: any case, spaces)."""
    if not identity or not isinstance(data, dict):
        return False
    for value in data.values():
        if isinstance(value, str) and "@" in value:
            try:
                if normalised_email(value)[0] == identity:
                    return True
            except ValueError:
                if value.strip().lower() == identity:
                    return True
    return False


__all__ = ["Receipt", "expected_status", "insert", "kick", "receive", "row_values",
           "rows_of_address", "rows_of_lead", "send_kick"]

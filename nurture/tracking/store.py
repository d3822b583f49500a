"""Database reads and writes the batch writer and the webhook share: facts about sends, a
lead's tracking consent, bulk inserts that skip rows already written."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app

from app.db import chunks as db_chunks
from app.db import db, insert_or_skip
from app.leads.event_columns import DedupeDigest, present_keys
from app.leads.event_types import EventType
from app.leads.models import ERASED_DISPLAY, Event, Lead
from nurture.models import Enrollment, Send
from nurture.tracking import classify

CHUNK = 500


def chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    return db_chunks(items, size)


def from_timestamp(ts: float | str | None) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


@dataclass
class SendFacts:
    id: int
    lead_id: int
    step_id: int
    sequence_id: int | None
    enrollment_id: int
    sent_at: datetime | None
    delivered_at: datetime | None = None
    human_open: bool = False

    @property
    def reference(self) -> datetime | None:
        """When the email reached the mailbox, as well as we know."""
        times = [t for t in (self.sent_at, self.delivered_at) if t is not None]
        return max(times) if times else None

    def columns(self) -> dict[str, Any]:
        """A provider event's columns about its email: the send, and its step (scoring rules
        filter on it). Integer columns, not keys of `data` (issue 14: small events); nothing
        a join gives back (the sequence is the step's) and no constant the type implies."""
        return {"send_id": self.id, "step_id": self.step_id}


def send_facts(send_ids: Iterable[int]) -> dict[int, SendFacts]:
    ids = sorted({int(i) for i in send_ids})
    facts: dict[int, SendFacts] = {}
    for part in chunks(ids):
        rows = db.session.execute(
            sa.select(Send.id, Send.lead_id, Send.step_id, Enrollment.sequence_id,
                      Send.enrollment_id, Send.sent_at)
            .join(Enrollment, Enrollment.id == Send.enrollment_id)
            .where(Send.id.in_(part))
        ).all()
        for row in rows:
            facts[row.id] = SendFacts(*row)
    if not facts:
        return facts
    lead_ids = sorted({f.lead_id for f in facts.values()})
    keys = sorted(facts)
    for part in chunks(lead_ids):
        found = db.session.execute(
            sa.select(Event.send_id, Event.type, sa.func.max(Event.occurred_at))
            .where(Event.lead_id.in_(part), Event.send_id.in_(keys),
                   sa.or_(Event.type == "email_delivered",
                          sa.and_(Event.type == "email_opened", Event.is_bot.is_(False))))
            .group_by(Event.send_id, Event.type)
        ).all()
        for send_id, type_, at in found:
            fact = facts.get(send_id) if send_id is not None else None
            if fact is None:
                continue
            if type_ == "email_delivered":
                fact.delivered_at = at
            else:
                fact.human_open = True
    return facts


def untracked_leads(lead_ids: Iterable[int]) -> set[int]:
    """Leads without tracking consent. The marker is the lead attribute `tracking_consent` (a
    checkbox form field of that name or an import sets it): False is never tracked; with
    `TRACKING_REQUIRE_CONSENT` on, only True is tracked (no answer means no). A lead erased on
    request is never tracked again (a click on an old email would link the browser anew)."""
    strict = bool(current_app.config.get("TRACKING_REQUIRE_CONSENT"))
    ids = sorted({i for i in lead_ids if i is not None})
    out: set[int] = set()
    for part in chunks(ids):
        for lead_id, attributes, display in db.session.execute(
                sa.select(Lead.id, Lead.attributes, Lead.email_display)
                .where(Lead.id.in_(part))):
            consent = consent_answer((attributes or {}).get("tracking_consent"))
            if consent is False or (strict and consent is not True) \
                    or display == ERASED_DISPLAY:
                out.add(lead_id)
    return out


def consent_answer(value: Any) -> bool | None:
    """The `tracking_consent` attribute as yes / no / no answer; a CSV import stores text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in ("false", "no", "0", "off"):
        return False
    if text in ("true", "yes", "1", "on"):
        return True
    return None


def event_row(type: str, *, lead_id: int | None, at: datetime, verdict: classify.Verdict
              = classify.HUMAN, send: SendFacts | None = None,
              data: dict[str, Any] | None = None, url: str | None = None,
              visitor_id: str | None = None, dedupe_key: str | None = None) -> dict[str, Any]:
    """One event's row for `insert_events`; `send`: the nurture email it is about."""
    data = dict(data or {})
    if verdict.reason and not verdict.is_bot:
        data["reason"] = verdict.reason
    about = send.columns() if send is not None else {"send_id": None, "step_id": None}
    return {"lead_id": lead_id, "visitor_id": visitor_id, "type": type, "occurred_at": at,
            "campaign_id": None, "url": url, "data": data, "is_bot": verdict.is_bot,
            "bot_reason": verdict.bot_reason, "dedupe_key": dedupe_key, **about}


def human_lead_ids(rows: list[dict[str, Any]]) -> set[int]:
    return {r["lead_id"] for r in rows if r["lead_id"] is not None and not r["is_bot"]}


def score_leads(lead_ids: Iterable[int]) -> int:
    """After the commit: ask scoring to look at these leads. Bulk inserts bypass the ORM flush
    scoring listens to (`nurture.scoring.incremental`), so without this only its periodic
    sweep would notice tracked activity. Never raises for Redis (the sweep catches up)."""
    from nurture.scoring.incremental import enqueue_for

    return enqueue_for({int(i) for i in lead_ids if i is not None})


def _insert(model: Any, index_elements: list[str]) -> Any:
    dialect = db.session.get_bind().dialect.name
    statement = insert_or_skip(model, index_elements, dialect)
    if statement is None:  # pragma: no cover - the project runs on SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database {dialect}")
    return statement


def insert_events(rows: list[dict[str, Any]]) -> None:
    """Bulk insert; a row whose dedupe key is already stored is skipped, not an error.

    On PostgreSQL one statement per 5,000 rows, the columns passed as arrays
    (`INSERT ... SELECT FROM unnest(...) ON CONFLICT (dedupe_key) DO NOTHING`); elsewhere (SQLite)
    an executemany of the same ON CONFLICT insert."""
    if not rows:
        return
    columns = list(rows[0])
    if _dialect() == "postgresql" and all(list(row) == columns for row in rows):
        for part in chunks(rows, 5000):
            _insert_unnest(cast(sa.Table, Event.__table__), columns, part, "dedupe_key")
        return
    for part in chunks(rows, 1000):
        db.session.execute(_insert(Event, ["dedupe_key"]), part)


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _array_type(column: sa.Column) -> str:
    kind: Any = column.type
    if isinstance(kind, DedupeDigest):
        return "bigint"
    if isinstance(kind, EventType):
        return "integer"
    if isinstance(kind, sa.types.TypeDecorator):
        kind = kind.impl
    if isinstance(kind, sa.JSON):
        return "jsonb"
    if isinstance(kind, sa.Boolean):
        return "boolean"
    if isinstance(kind, sa.Integer):
        return "bigint"
    if isinstance(kind, sa.DateTime):
        return "timestamptz"
    if isinstance(kind, (sa.String, sa.Text)):
        return "text"  # the column's own length still applies on assignment
    raise TypeError(f"no array type for {column}")  # pragma: no cover


def _insert_unnest(table: sa.Table, columns: list[str], rows: list[dict[str, Any]],
                   conflict: str) -> None:
    """One multi-row insert on PostgreSQL: each column travels as one array parameter. Values
    go through the columns' own bind processing (UTC datetimes, JSON) first."""
    conn = db.session.connection()
    dialect = conn.dialect
    arrays = []
    casts = []
    for name in columns:
        column = table.c[name]
        kind = _array_type(column)
        values = [row[name] for row in rows]
        if isinstance(column.type, sa.types.TypeDecorator):
            values = [column.type.process_bind_param(v, dialect) for v in values]
        if kind == "jsonb":
            values = [None if v is None else json.dumps(v) for v in values]
        arrays.append(values)
        casts.append(f"%s::{kind}[]")
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in columns)
    sql = (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({quoted}) "
           f"SELECT * FROM unnest({', '.join(casts)}) "
           f"ON CONFLICT ({dialect.identifier_preparer.quote(conflict)}) DO NOTHING")
    conn.exec_driver_sql(sql, tuple(arrays))


def insert_ignoring(model: Any, rows: list[dict[str, Any]], index_elements: list[str]) -> None:
    for part in chunks(rows, 1000):
        db.session.execute(_insert(model, index_elements), part)


def existing_keys(keys: Iterable[str]) -> set[str]:
    """Which of these dedupe keys are stored already (the unique index on their digests)."""
    return present_keys(Event.dedupe_key, keys)

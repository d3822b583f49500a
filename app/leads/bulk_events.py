"""Many events in one statement, each stored once by its `dedupe_key`.

`insert_new(rows)` is `INSERT … ON CONFLICT (dedupe_key) DO NOTHING RETURNING lead_id`, built
from the `Event` table so its column types (and their bind processing) apply. On PostgreSQL
the rows go as one JSON text (`INSERT … SELECT FROM json_to_recordset(…)`): one parameter
however many rows, encoded by the json module in C and parsed by the server, where a
multi-row VALUES list costs the driver a parse of thousands of placeholders and an array per
column costs it a Python dumper call per value. Elsewhere (SQLite) it is the multi-row VALUES
insert.

The caller commits, then tells scoring with `app.leads.service.events_written`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.db import db, insert_or_skip, json_plain
from app.leads.models import Event

COLUMNS = ("lead_id", "type", "occurred_at", "url", "data", "is_bot", "dedupe_key")


def _as_json(rows: Sequence[dict[str, Any]], dialect: Any) -> str:
    """The rows' values, each through its column's bind processing (an event type name
    becomes its code, a dedupe key its digest), as one JSON array of arrays."""
    table = Event.__table__
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in COLUMNS]
    values = [[row[name] if process is None else process(row[name])
               for name, process in zip(COLUMNS, processors, strict=True)] for row in rows]
    return json.dumps([dict(zip(COLUMNS, row, strict=True)) for row in values],
                      default=json_plain, separators=(",", ":"))


def insert_new(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert the rows (dicts of COLUMNS; dedupe_key set) whose dedupe_key is not stored yet;
    the lead id of each row inserted."""
    if not rows:
        return []
    table = Event.__table__
    dialect = db.session.get_bind().dialect
    if dialect.name == "postgresql":
        records = sa.func.json_to_recordset(
            sa.cast(sa.bindparam("event_rows", _as_json(rows, dialect), type_=sa.Text), sa.JSON)
        ).table_valued(*[sa.column(name, table.c[name].type.dialect_impl(dialect))
                         for name in COLUMNS]).render_derived(with_types=True)
        statement = (postgresql.insert(Event)
                     .from_select(COLUMNS, sa.select(*[records.c[name] for name in COLUMNS]))
                     .on_conflict_do_nothing(index_elements=["dedupe_key"]))
        return list(db.session.scalars(statement.returning(table.c.lead_id)))
    each = insert_or_skip(table, ["dedupe_key"], dialect.name)
    assert each is not None, f"no INSERT … ON CONFLICT on {dialect.name}"
    return list(db.session.scalars(each.returning(table.c.lead_id), list(rows)))

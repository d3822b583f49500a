"""Many events in one statement, each stored once by its `dedupe_key`.

`insert_new(rows)` is `INSERT … ON CONFLICT (dedupe_key) DO NOTHING RETURNING lead_id`, built
from the `Event` table so its column types (and their bind processing) apply. On PostgreSQL
the rows go as one array a column (`INSERT … SELECT FROM unnest(…)`): eight parameters
however many rows, where a multi-row VALUES list costs the driver a parse of thousands of
placeholders. Elsewhere (SQLite) it is the multi-row VALUES insert.

The caller commits, then tells scoring with `app.leads.service.events_written`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.db import db, insert_or_skip
from app.leads.models import Event

COLUMNS = ("lead_id", "type", "occurred_at", "url", "data", "is_bot", "dedupe_key")


def insert_new(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert the rows (dicts of COLUMNS; dedupe_key set) whose dedupe_key is not stored yet;
    the lead id of each row inserted."""
    if not rows:
        return []
    table = Event.__table__
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        arrays = [sa.bindparam(f"in_{name}", [row[name] for row in rows],
                               type_=postgresql.ARRAY(table.c[name].type)) for name in COLUMNS]
        source = sa.func.unnest(*arrays).table_valued(
            *[sa.column(name, table.c[name].type) for name in COLUMNS]).render_derived()
        statement = (postgresql.insert(Event)
                     .from_select(COLUMNS, sa.select(*[source.c[name] for name in COLUMNS]))
                     .on_conflict_do_nothing(index_elements=["dedupe_key"]))
        return list(db.session.scalars(statement.returning(table.c.lead_id)))
    each = insert_or_skip(table, ["dedupe_key"], dialect)
    assert each is not None, f"no INSERT … ON CONFLICT on {dialect}"
    return list(db.session.scalars(each.returning(table.c.lead_id), list(rows)))

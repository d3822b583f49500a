"""Many events in one statement, each stored once by its `dedupe_key`.

`insert_new(rows)` is `INSERT … ON CONFLICT (dedupe_key) DO NOTHING RETURNING lead_id`
through `app.db.insert_rows`, so the `Event` columns' types (and their bind processing) apply:
on PostgreSQL the rows go as one JSON text, elsewhere (SQLite) as a multi-row insert.

The caller commits, then tells scoring with `app.leads.service.events_written`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa

from app.db import insert_rows
from app.leads.event_columns import split_send
from app.leads.models import Event

COLUMNS = ("lead_id", "type", "occurred_at", "url", "data", "is_bot", "dedupe_key")


def _send_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A row's data with send_id / step_id in their columns, as `record_event` stores them."""
    data, send_id, step_id = split_send(row.get("data"))
    return {**row, "data": data, "send_id": send_id, "step_id": step_id}


def insert_new(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert the rows (dicts of COLUMNS; dedupe_key set) whose dedupe_key is not stored yet;
    the lead id of each row inserted."""
    table = cast(sa.Table, Event.__table__)
    return [lead_id for (lead_id,) in insert_rows(table, [_send_columns(r) for r in rows],
                                                  returning=(table.c.lead_id,),
                                                  skip_conflicts=["dedupe_key"])]

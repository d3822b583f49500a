"""Keyset pages for the API's lists: oldest first by id, `limit` (≤ 200) at a time, an opaque
`next_cursor` (null on the last page). Shared by every list resource but leads (whose list
is the leads list's own query, `app.leads.query`); their query arguments extend
`app.api.schemas.PageArgs`, their answers are `app.api.schemas.page_schema`.

    return list_page(sa.select(Campaign), Campaign.id, args, document,
                     filters={"status": Campaign.status})
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from flask import abort

from app.api.errors import field_problem
from app.api.schemas import MAX_ID
from app.db import db


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    kind, _, value = text.partition(":")
    return int(value) if kind == "id" and value.isdigit() and len(value) < 19 else None


class BadCursor(ValueError):
    pass


def page(query: Any, id_column: Any, args: dict[str, Any]) -> tuple[list[Any], str | None]:
    """Rows of `query` after the cursor, ordered by `id_column`. Raises BadCursor."""
    if "cursor" in args:
        after = decode_cursor(args["cursor"])
        if after is None:
            raise BadCursor("Not a cursor from this API: use next_cursor.")
        query = query.where(id_column > after)
    limit = args["limit"]
    rows = list(db.session.scalars(query.order_by(id_column).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more and rows else None)


def list_page(query: Any, id_column: Any, args: dict[str, Any],
              document: Callable[[Any], dict[str, Any]],
              filters: Mapping[str, Any] | None = None) -> Any:
    """A list resource's answer: `query` narrowed by each given argument of `filters` (the
    argument's name → the column it must equal), one page of it as `{data, next_cursor}`,
    or a problem for a bad cursor."""
    for name, column in (filters or {}).items():
        if name in args:
            query = query.where(column == args[name])
    try:
        rows, next_cursor = page(query, id_column, args)
    except BadCursor as exc:
        return field_problem("cursor", str(exc))
    return {"data": [document(row) for row in rows], "next_cursor": next_cursor}


def get_or_404(model: Any, row_id: int, noun: str) -> Any:
    """The row of `model` with this id, or a 404 problem saying there is no such `noun`."""
    row = db.session.get(model, row_id) if 0 < row_id <= MAX_ID else None
    if row is None:
        abort(404, description=f"There is no {noun} {row_id}.")
    return row

"""Keyset pages for the API's lists: oldest first by id, `limit` (≤ 200) at a time, an opaque
`next_cursor` (null on the last page). Shared by every list resource;
their query arguments extend `app.api.schemas.PageArgs`."""

from __future__ import annotations

import base64
import binascii
from typing import Any

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

"""Compact column types of the event log (issue 14: small events).

- `DedupeDigest`: a writer's dedupe key ("t:<hit id>", "sg:<event id>", …) is stored as an
  8-byte digest (a `bigint`: the first 8 bytes of its MD5, big-endian, signed), not as text.
  PostgreSQL computes the same digest (`digest_sql`) for migrations and bulk loaders; the keys
  are ids, not secrets. Comparisons and inserts take the key as before
  (`Event.dedupe_key == key`, `in_`, `ON CONFLICT (dedupe_key)`): the digest is computed on the
  way in, so the unique index still allows one row per key. A key read back is its digest in
  hex: compare with `digest_hex(key)`, or ask `present_keys`.
  Why 8 bytes and not 16: the unique index over random keys is the log's second largest (a
  16-byte key cost 37 bytes per event in it, an 8-byte one 23), and the heap saves 8 more. Two
  different keys meet on one 64-bit digest with a chance of about n²/2⁶⁵ over n keys (one in
  3,700 at 100 million events); when they do, the later event is taken for a repeat of the
  earlier and not written: one open or delivery missing from a log of 100 million.
- `OptionalJSON`: JSON metadata that is SQL NULL when empty (no `'{}'` per row) and `{}` again
  when read.
- `send_id` / `step_id`: the nurture email an event is about, in two integer columns; writers
  that are handed a `data` dict holding them (`record_event`, the API's bulk rows) move them out
  with `split_send`, readers that show an event put them back with `with_send`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB


def digest(key: str) -> bytes:
    """The stored digest's 8 bytes: the start of the key's MD5."""
    return hashlib.md5(str(key).encode("utf-8"), usedforsecurity=False).digest()[:8]


def digest_hex(key: str) -> str:
    return digest(key).hex()


def digest_int(key: str) -> int:
    """What the column stores for `key` (a signed 64-bit integer)."""
    return int.from_bytes(digest(key), "big", signed=True)


def digest_sql(expression: str) -> str:
    """PostgreSQL computing `digest_int` of a text expression (bulk loaders, migrations)."""
    return f"('x' || left(md5({expression}), 16))::bit(64)::bigint"


class DedupeDigest(sa.types.TypeDecorator):
    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else digest_int(value)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return int(value).to_bytes(8, "big", signed=True).hex()

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return self


class OptionalJSON(sa.types.TypeDecorator):
    """JSON (JSONB on PostgreSQL); an empty document is stored as NULL and read as {}."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value if value else None

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return {} if value is None else value

    @property
    def comparator_factory(self):
        # `Event.data["link_index"].as_integer()` and friends: JSON's own operators.
        return sa.JSON.Comparator


SEND_KEYS = ("send_id", "step_id")
_INT4 = 2**31


def _column_int(value: Any, shape: type) -> int | None:
    """`value` as a column integer when it has the shape the writers stored it in (send_id a
    string of digits, step_id a JSON number), so `with_send` gives back exactly what it was.
    Anything else stays in `data`."""
    if type(value) is not shape:
        return None
    text = str(value)
    if not (text.isascii() and text.isdigit() and len(text) < 11):
        return None  # negative, or not a plain decimal integer
    number = int(text)
    return number if number < _INT4 and str(number) == text else None


def split_send(data: dict[str, Any] | None) -> tuple[dict[str, Any], int | None, int | None]:
    """(data without send_id / step_id, send_id, step_id): the keys that `with_send` gives back
    unchanged move to the columns; a key of another shape (a custom event's own "send_id")
    stays in `data`."""
    rest = dict(data or {})
    send_id = _column_int(rest.get("send_id"), str)
    step_id = _column_int(rest.get("step_id"), int)
    if send_id is not None:
        del rest["send_id"]
    if step_id is not None:
        del rest["step_id"]
    return rest, send_id, step_id


def with_send(data: dict[str, Any] | None, send_id: int | None, step_id: int | None
              ) -> dict[str, Any]:
    """An event's data as it reads to users: its columns send_id (as a string) and step_id
    put back among its keys."""
    out = dict(data or {})
    if send_id is not None:
        out["send_id"] = str(send_id)
    if step_id is not None:
        out["step_id"] = step_id
    return out


def with_send_sql(postgres: bool) -> str:
    """`with_send(data, send_id, step_id)` of an `events` row in SQL (raw readers)."""
    if postgres:
        return ("CASE WHEN send_id IS NULL AND step_id IS NULL THEN data ELSE "
                "COALESCE(data, '{}'::jsonb) || jsonb_strip_nulls(jsonb_build_object("
                "'send_id', send_id::text, 'step_id', step_id)) END")
    sent = ("CASE WHEN send_id IS NULL THEN data "
            "ELSE json_set(COALESCE(data, '{}'), '$.send_id', CAST(send_id AS TEXT)) END")
    return f"CASE WHEN step_id IS NULL THEN {sent} ELSE json_set({sent}, '$.step_id', step_id) END"


def present_keys(column: Any, keys: Iterable[str]) -> set[str]:
    """Which of `keys` some row of `column` (a DedupeDigest column) already holds."""
    from app.db import db

    by_digest = {digest_hex(k): k for k in keys}
    found: set[str] = set()
    wanted = list(by_digest.values())
    postgres = db.session.get_bind().dialect.name == "postgresql"
    size = 20_000 if postgres else 1000
    for start in range(0, len(wanted), size):
        part = wanted[start:start + size]
        if postgres:  # one array parameter (the unique index), not a parameter per key
            digests = [digest_int(k) for k in part]
            where = column == sa.any_(sa.bindparam("digests", digests,
                                                   type_=ARRAY(sa.BigInteger())))
        else:
            where = column.in_(part)
        for stored in db.session.scalars(sa.select(column).where(where)):
            if stored in by_digest:
                found.add(by_digest[stored])
    return found


__all__ = ["SEND_KEYS", "DedupeDigest", "OptionalJSON", "digest", "digest_hex", "digest_int",
           "digest_sql", "present_keys", "split_send", "with_send", "with_send_sql"]

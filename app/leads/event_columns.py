"""Compact column types of the event log (issue 14: small events).

- `DedupeDigest`: a writer's dedupe key ("t:<hit id>", "sg:<event id>", …) is stored as its
  16-byte MD5 digest (PostgreSQL `uuid`, fixed 16 bytes; SQLite a 16-byte blob), not as text.
  PostgreSQL computes the same digest (`md5(key)::uuid`) for migrations and bulk loaders; the
  keys are ids, not secrets. Comparisons and inserts take the key as before
  (`Event.dedupe_key == key`, `in_`, `ON CONFLICT (dedupe_key)`): the digest is computed on the
  way in, so the unique index still allows one row per key (two different keys sharing a
  128-bit digest by chance is negligible). A key read back is its digest in hex: compare with
  `digest_hex(key)`, or ask `present_keys`.
- `OptionalJSON`: JSON metadata that is SQL NULL when empty (no `'{}'` per row) and `{}` again
  when read.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID


def digest(key: str) -> bytes:
    return hashlib.md5(str(key).encode("utf-8"), usedforsecurity=False).digest()


def digest_hex(key: str) -> str:
    return digest(key).hex()


class DedupeDigest(sa.types.TypeDecorator):
    impl = sa.LargeBinary(16)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(UUID(as_uuid=True))
        return dialect.type_descriptor(sa.LargeBinary(16))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        raw = digest(value)
        return uuid.UUID(bytes=raw) if dialect.name == "postgresql" else raw

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, uuid.UUID):
            return value.bytes.hex()
        return bytes(value).hex()

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
        # `Event.data["send_id"].as_string()` and friends: JSON's own operators.
        return sa.JSON.Comparator


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
            digests = [uuid.UUID(bytes=digest(k)) for k in part]
            where = column == sa.any_(sa.bindparam("digests", digests,
                                                   type_=ARRAY(UUID(as_uuid=True))))
        else:
            where = column.in_(part)
        for stored in db.session.scalars(sa.select(column).where(where)):
            if stored in by_digest:
                found.add(by_digest[stored])
    return found


__all__ = ["DedupeDigest", "OptionalJSON", "digest", "digest_hex", "present_keys"]

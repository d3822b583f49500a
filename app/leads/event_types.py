"""Event types stored as integers, read and queried as their names.

`events.type` holds a 4-byte code, not the name (issue 14: small events). Python code and
queries keep using names: `EventType` maps them on the way in and out, so
`Event.type == "email_opened"`, `Event.type.in_([...])`, `GROUP BY type` and bulk inserts work
as before.

- The built-in types have fixed codes (`FIXED`, never renumber: stored rows hold them).
- Any other name (custom API events `custom.<name>`, high-intent page types from settings, a
  type added later) gets a code derived from the name itself (a hash above `FIXED`'s range), so
  every process computes the same code without asking anyone. The name is kept in the table
  `event_types (id, name)`: written in the same transaction as the statement that stores the
  first event of that name (see `_register_pending`), read back (and cached) to show names of
  codes this process has not seen.

A 4-byte integer rather than a 2-byte one: the column sits between a 4-byte and an 8-byte
aligned column, so it costs the same bytes in the row and in the (type, occurred_at) index,
and the hash range makes two names meeting on one code practically impossible.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import sqlalchemy as sa

# Never renumber or reuse a code: rows on disk hold them.
FIXED: dict[str, int] = {name: code for code, name in enumerate((
    "email_opened", "email_clicked", "email_delivered", "email_sent", "page_viewed",
    "form_submitted", "asset_downloaded", "site_returned", "unsubscribed", "bounced",
    "subscription_confirmed", "email_dropped", "email_blocked", "spam_reported",
    "email_replied", "asset_email_sent", "lead_imported", "lead_erased", "nurture_enrolled",
    "nurture_exited", "nurture_completed", "owner_assigned", "profile_updated",
    "profile_edited", "subscription_changed", "subscription_expired", "handoff_decided",
    "handoff_refused", "sales_alert_sent", "sales_alert_undelivered", "outcome_recorded",
    "engagement_reset", "suppressed_after_erasure", "opted_in_after_erasure",
    "pricing_viewed", "demo_requested",
), start=1)}
NAMES: dict[int, str] = {code: name for name, code in FIXED.items()}

FIRST_HASHED = 1000  # codes below are the fixed table's
_SPAN = 2**31 - 1 - FIRST_HASHED

_known: dict[int, str] = {}  # hashed codes seen in this process -> name
_codes: dict[str, int] = {}  # and the other way (a hash per bound value costs a bulk insert)
# A code no one knows (a row written by raw SQL without its name) re-reads the table at most
# this often, not once per row read.
RELOAD_SECONDS = 5.0
_loaded_at = [float("-inf")]
_lock = threading.Lock()
_pending = threading.local()  # names bound in this thread, not yet written to event_types


def hashed_code(name: str) -> int:
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return FIRST_HASHED + int.from_bytes(digest, "big") % _SPAN


def code_of(name: str) -> int:
    """The stored code of an event type name (pure: the same in every process)."""
    code = FIXED.get(name) or _codes.get(name)
    if code is None:
        code = hashed_code(name)
        with _lock:
            _known[code] = name
            _codes[name] = code
    return code


def name_of(code: int | None) -> str | None:
    if code is None:
        return None
    code = int(code)
    name = NAMES.get(code) or _known.get(code)
    if name is None and time.monotonic() - _loaded_at[0] > RELOAD_SECONDS:
        _load_names()
        name = _known.get(code)
    return name if name is not None else f"unknown-{code}"


def forget() -> None:
    """Forget the names this process learnt (as a fresh process; after a database restore)."""
    with _lock:
        _known.clear()
        _codes.clear()
        _loaded_at[0] = float("-inf")


def _load_names() -> None:
    """Codes of names other processes stored: read the table (a separate connection, so a
    transaction in progress is not disturbed)."""
    from app.db import db

    try:
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, name FROM event_types")).all()
    except sa.exc.SQLAlchemyError:
        return
    with _lock:
        _known.update({int(code): str(name) for code, name in rows})
        _loaded_at[0] = time.monotonic()


class EventType(sa.types.TypeDecorator):
    """An event type name in Python, its integer code in the database."""

    impl = sa.Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, int):  # already a code (raw rows, migrations)
            return value
        name = str(value)
        if name not in FIXED:
            names = getattr(_pending, "names", None)
            if names is None:
                names = _pending.names = set()
            names.add(name)
        return code_of(name)

    def process_literal_param(self, value: Any, dialect: Any) -> str:
        code = self.process_bind_param(value, dialect)
        return "NULL" if code is None else str(code)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return name_of(value)

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return self


def _register_pending(conn: Any, cursor: Any, statement: str, parameters: Any,
                      context: Any, executemany: bool) -> None:
    """Before a statement that may store events runs, store the names of new types it binds,
    on the same connection (so in its transaction: no event row without its name, on SQLite
    no second writer). A name bound by a query only is forgotten: nothing to resolve."""
    names = getattr(_pending, "names", None)
    if not names:
        return
    _pending.names = set()
    head = statement.lstrip()[:6].upper()
    if head not in ("INSERT", "UPDATE"):
        return
    rows = [(hashed_code(name), name) for name in sorted(names)]
    if conn.dialect.name == "postgresql":
        sql = "INSERT INTO event_types (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    else:
        sql = "INSERT OR IGNORE INTO event_types (id, name) VALUES (?, ?)"
    extra = cursor.connection.cursor()
    try:
        extra.executemany(sql, rows)
    finally:
        extra.close()


sa.event.listen(sa.engine.Engine, "before_cursor_execute", _register_pending)


def custom_names(prefix: str, limit: int = 100) -> list[str]:
    """Names of stored types starting with `prefix` that some event still has."""
    from app.db import db

    rows = db.session.execute(sa.text(
        "SELECT t.name FROM event_types t WHERE t.name LIKE :pattern ESCAPE '\\' "
        "AND EXISTS (SELECT 1 FROM events e WHERE e.type = t.id) ORDER BY t.name LIMIT :limit"),
        {"pattern": prefix.replace("%", r"\%").replace("_", r"\_") + "%", "limit": limit})
    return [str(name) for (name,) in rows]


def sql_name(column: str = "type") -> str:
    """SQL turning a code column into its name (raw SQL readers that want names)."""
    whens = " ".join(f"WHEN {code} THEN '{name}'" for name, code in FIXED.items())
    return (f"CASE {column} {whens} "
            f"ELSE (SELECT t.name FROM event_types t WHERE t.id = {column}) END")


def sql_case(column: str = "type") -> str:
    """SQL turning a name column/expression into codes (fixed names only): for raw SQL
    loaders (benchmarks) and migrations."""
    whens = " ".join(f"WHEN '{name}' THEN {code}" for name, code in FIXED.items())
    return f"CASE {column} {whens} END"


__all__ = ["FIXED", "EventType", "code_of", "custom_names", "forget", "hashed_code", "name_of",
           "sql_case", "sql_name"]

"""The SQLAlchemy handle, the declarative base and column types shared by every package."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from psycopg.types.json import Json, Jsonb
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic can alter and drop them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every database.

    SQLite has no time zones: values are stored as naive UTC and handed back aware, so code
    never compares naive with aware datetimes.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use app.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
log = logging.getLogger(__name__)


def init_app(app: Any) -> None:
    """After `db.init_app`: end each app context's session before Flask-SQLAlchemy's own
    teardown does (teardowns run last-registered first). A connection the database dropped
    after the request's last query (an outage beginning) makes that rollback fail; it must
    not turn the answer already made into a bare 500 from the server. The pool discards the
    connection; the second try ends the session."""

    with app.app_context():
        for engine in db.engines.values():
            ping_when_idle(engine, float(app.config.get("DATABASE_PING_AFTER_IDLE_SECONDS", 2)))

    @app.teardown_appcontext
    def _end_session(exc: BaseException | None) -> None:
        try:
            db.session.remove()
        except sa.exc.DBAPIError as error:
            log.warning("database connection lost at the end of a request (%s); discarded",
                        type(error).__name__)
            db.session.remove()

def insert_or_skip(target: Any, index_elements: list[str], dialect: str) -> Any | None:
    """`INSERT … ON CONFLICT (index_elements) DO NOTHING` into `target` for `dialect`, or None
    on a database without that statement (there a plain INSERT and the unique key decide)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(target).on_conflict_do_nothing(index_elements=index_elements)
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(target).on_conflict_do_nothing(index_elements=index_elements)
    return None


def chunks(items: list[Any], size: int = 1000) -> Iterator[list[Any]]:
    """`items` `size` at a time: the parts of a long id list for `IN (…)` statements (SQLite
    takes a bounded number of parameters)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def any_of(column: Any, values: list[Any]) -> Any:
    """`column IN values`; on PostgreSQL `column = ANY(array)`: one parameter for a thousand
    values (the driver parses each placeholder of a long IN list)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def json_plain(value: Any) -> Any:
    """`json.dumps(default=…)` for bound values: what each is in JSON text that PostgreSQL casts
    back to its column's type (psycopg's JSON wrappers, datetimes, UUIDs)."""
    if isinstance(value, (Json, Jsonb)):
        return value.obj
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _records(table: sa.Table, rows: list[dict[str, Any]], names: list[str]) -> list[Any]:
    """PostgreSQL: the rows as `json_to_recordset(<one JSON text>)`, each value through its
    column's bind processing first (UTC datetimes, JSON, event codes). One parameter however
    many rows, encoded by the json module in C: a multi-row VALUES list costs the driver a
    parse of thousands of placeholders, an array a column a Python call per value. A column
    with the same value in every row goes as that one value. The columns' expressions, in
    `names` order."""
    dialect = db.session.get_bind().dialect
    varying = [name for name in names
               if any(row[name] != rows[0][name] for row in rows)] or names[:1]
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in varying]
    text = json.dumps([{name: row[name] if process is None or row[name] is None
                        else process(row[name])
                        for name, process in zip(varying, processors, strict=True)}
                       for row in rows], default=json_plain, separators=(",", ":"))
    source = sa.func.json_to_recordset(sa.cast(sa.bindparam("rows_json", text, type_=sa.Text),
                                               sa.JSON)).table_valued(
        *[sa.column(name, table.c[name].type.dialect_impl(dialect)) for name in varying]
    ).render_derived(with_types=True)
    return [source.c[name] if name in varying
            else sa.bindparam(f"one_{name}", rows[0][name], type_=table.c[name].type)
            for name in names]


def insert_rows(table: sa.Table, rows: list[dict[str, Any]],
                returning: tuple[Any, ...] = (), skip_conflicts: list[str] | None = None
                ) -> list[Any]:
    """INSERT many rows (dicts with the same keys) in one statement; the `returning` columns of
    each inserted row (in no promised order). On PostgreSQL `INSERT … SELECT FROM
    json_to_recordset(…)` (see `_records`); elsewhere (SQLite) a multi-row insert.
    `skip_conflicts`: the columns of a unique key; a row whose key is stored already is
    skipped (`ON CONFLICT … DO NOTHING`), not an error."""
    if not rows:
        return []
    names = list(rows[0])
    dialect = db.session.get_bind().dialect.name
    statement: Any = sa.insert(table)
    if skip_conflicts:
        statement = insert_or_skip(table, skip_conflicts, dialect)
        assert statement is not None, f"no INSERT … ON CONFLICT on {dialect}"
    if dialect == "postgresql":
        statement = statement.from_select(names, sa.select(*_records(table, rows, names)))
        if not returning:
            db.session.execute(statement)
            return []
        return list(db.session.execute(statement.returning(*returning)))
    if not returning:
        db.session.execute(statement, rows)
        return []
    return list(db.session.execute(statement.returning(*returning), rows))


def update_rows(table: sa.Table, rows: list[dict[str, Any]], key: str = "id") -> None:
    """UPDATE many rows by `key` in one statement: each row a dict with the key and the same
    other columns, where None means "leave this column as it is" (COALESCE), so a batch of rows
    that change different columns is still one statement. PostgreSQL: `UPDATE … FROM
    json_to_recordset(…)`; elsewhere an executemany of the same UPDATE."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    if db.session.get_bind().dialect.name == "postgresql":
        keys, *values = _records(table, rows, [key, *names])
        db.session.execute(sa.update(table).where(table.c[key] == keys).values(
            {name: sa.func.coalesce(value, table.c[name])
             for name, value in zip(names, values, strict=True)}))
        return
    statement = sa.update(table).where(table.c[key] == sa.bindparam(f"b_{key}")).values(
        {name: sa.func.coalesce(sa.bindparam(f"b_{name}", type_=table.c[name].type),
                                table.c[name]) for name in names})
    db.session.execute(statement, [{f"b_{name}": value for name, value in row.items()}
                                   for row in rows])


def driver_params(compiled: Any) -> dict[str, Any]:
    """A compiled statement's parameters as the driver must get them when the SQL string is
    run on a raw cursor: each value through its bind's type (e.g. an event type name becomes
    its code), the elements of IN lists expanded by `render_postcompile` included."""
    dialect = compiled.dialect
    params: dict[str, Any] = {}
    for name, value in compiled.params.items():
        bind = compiled.binds.get(name)
        if bind is None and "_" in name:  # an IN list's element: <bind name>_<n>
            bind = compiled.binds.get(name.rsplit("_", 1)[0])
        process = bind.type.bind_processor(dialect) if bind is not None else None
        params[name] = process(value) if process is not None and value is not None else value
    return params


def rows_matched(statement: Any) -> int:
    """Run an UPDATE or DELETE in the current session and return how many rows it matched
    (the compare-and-set claims of jobs and links read this)."""
    result: sa.CursorResult[Any] = db.session.execute(statement)  # type: ignore[assignment]
    return result.rowcount


def ping_when_idle(engine: sa.Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling where it can matter: a connection is pinged at checkout
    only when it has sat in the pool for `idle_seconds` (a restarted server, a proxy's idle
    cut); a dead one is replaced before the request uses it. A connection checked in a moment
    ago answered then: SQLAlchemy's `pool_pre_ping` would cost it one more round trip (the
    submit path's whole work is one INSERT). If it died in between, its statement fails, the
    pool is invalidated, and the request answers as for any outage (a submit is spilled)."""

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_seconds:
            return  # just connected, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(f"idle connection is gone: {exc}") from exc


# Models subclass `Model`: Flask-SQLAlchemy's `db.Model` at run time (table names, the session
# binding), seen by the type checker as the declarative base it is built on.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


@sa.event.listens_for(sa.pool.Pool, "connect")
def _remember_pid(dbapi_connection: Any, record: Any) -> None:
    record.info["pid"] = os.getpid()


@sa.event.listens_for(sa.pool.Pool, "checkout")
def _refuse_connections_from_another_process(dbapi_connection: Any, record: Any,
                                             proxy: Any) -> None:
    """RQ forks a work-horse for the jobs of queues outside RQ_IN_PROCESS_QUEUES (and its
    scheduler process), after the worker's own in-process jobs have filled its pool: a
    connection opened by the parent is never used by the child (SQLAlchemy's recipe for pools
    across os.fork)."""
    if record.info.get("pid") != os.getpid():
        record.dbapi_connection = proxy.dbapi_connection = None
        raise sa.exc.DisconnectionError("connection belongs to another process")


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """Foreign keys on, and WAL so the web, worker and scheduler processes share the file."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()

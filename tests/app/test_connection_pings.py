"""A pooled connection is pinged at checkout only after it sat idle: one used a moment ago
costs no extra round trip, and a dead idle one is replaced before a request uses it."""

import sqlalchemy as sa

from app.db import db


def _pings(monkeypatch) -> list[object]:
    pings: list[object] = []
    real = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping",
                        lambda conn: pings.append(conn) or real(conn))
    return pings


def _age_pool(seconds: float) -> None:
    """Make every connection in the pool look checked in `seconds` ago."""
    with db.engine.connect() as conn:
        record = conn.connection._connection_record
    record.info["checked_in_at"] -= seconds


def test_a_connection_used_a_moment_ago_is_not_pinged_and_an_idle_one_is(app, monkeypatch):
    db.session.remove()
    db.engine.dispose()
    pings = _pings(monkeypatch)
    for _ in range(3):
        with db.engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT 1")) == 1
    assert pings == []  # just connected, then reused at once: no round trip of its own
    _age_pool(app.config["DATABASE_PING_AFTER_IDLE_SECONDS"] + 1)
    with db.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT 1")) == 1
    assert len(pings) == 1


def test_a_dead_idle_connection_is_replaced_before_use(app, monkeypatch):
    db.session.remove()
    db.engine.dispose()
    with db.engine.connect() as conn:
        first = conn.connection.dbapi_connection
    _age_pool(60)
    dbapi = db.engine.dialect.loaded_dbapi

    def gone(conn):
        if conn is first:
            raise dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(db.engine.dialect, "do_ping", gone)
    with db.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT 1")) == 1
        assert conn.connection.dbapi_connection is not first

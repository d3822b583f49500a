"""Test helpers that read like a story: make a user, sign in, read the outbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import current_app

from app.auth.models import User, create_user
from app.db import db

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def make_user(email: str = "marketer@example.com", role: str = "marketer",
              password: str = PASSWORD) -> User:
    user = create_user(email, password, role, name=email.split("@")[0].title())
    db.session.commit()
    return user


class AuthActions:
    def __init__(self, client):
        self.client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def login(self, email: str = "marketer@example.com", password: str = PASSWORD):
        return self.client.post("/login", data={"email": email, "password": password,
                                                "csrf_token": self.csrf()})

    def login_as(self, role: str, email: str | None = None):
        """Create a user with `role` and sign in as them."""
        email = email or f"{role}@example.com"
        make_user(email, role)
        response = self.login(email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf("/admin/")})


def outbox_files() -> list[Path]:
    folder = Path(current_app.config["INSTANCE_PATH"]) / "outbox"
    return sorted(folder.glob("*.eml")) if folder.exists() else []


@contextmanager
def database_refusing() -> Iterator[None]:
    """Every new database connection refused (the driver's OperationalError), as when the
    server is down; the pool is emptied before and after."""
    import sqlalchemy as sa

    def refuse(dialect, record, cargs, cparams):
        raise dialect.loaded_dbapi.OperationalError("unable to open database file")

    sa.event.listen(db.engine, "do_connect", refuse)
    db.session.remove()
    db.engine.dispose()
    try:
        yield
    finally:
        sa.event.remove(db.engine, "do_connect", refuse)
        db.session.remove()
        db.engine.dispose()


@contextmanager
def statements_sent(words: int = 3) -> Iterator[list[tuple[str, bool]]]:
    """The SQL statements this thread sends while the block runs: their first `words` words
    and whether each ran in autocommit. On PostgreSQL they are watched at psycopg's cursor (the
    submit's intake INSERT goes to the driver itself, past SQLAlchemy's events), elsewhere
    through SQLAlchemy's."""
    import threading

    import sqlalchemy as sa

    me, seen = threading.get_ident(), []

    def head(sql: object) -> str:
        return " ".join(str(sql).split()[:words])

    if db.engine.dialect.name == "postgresql":
        import psycopg

        execute = psycopg.Cursor.execute

        def driver_execute(cursor, query, *args, **kwargs):
            if threading.get_ident() == me:
                seen.append((head(query), cursor.connection.autocommit))
            return execute(cursor, query, *args, **kwargs)

        psycopg.Cursor.execute = driver_execute  # type: ignore[method-assign]
        try:
            yield seen
        finally:
            psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        return

    def statement(conn, cursor, sql, params, context, executemany):
        if threading.get_ident() == me:  # not a background thread's
            isolation = conn.get_execution_options().get("isolation_level")
            seen.append((head(sql), isolation == "AUTOCOMMIT"))

    sa.event.listen(db.engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", statement)

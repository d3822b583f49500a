"""The migrations produce exactly the schema the models describe, on this run's database."""

import warnings

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.db import db


def test_migrated_schema_matches_the_models(app):
    with db.engine.connect() as conn, warnings.catch_warnings():
        if conn.dialect.name == "sqlite":
            # The leads search's lower(...) indexes are PostgreSQL's only (ddl_if); Alembic
            # cannot reflect expression indexes from SQLite, says so, and leaves them out.
            warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified "
                                              "expression-based index 'ix_leads_")
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_the_migration_chain_has_a_single_head(app):
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
    assert len(script.get_heads()) == 1


def test_migrations_run_past_the_web_statement_timeout(app_config, make_app):
    """`flask db upgrade` may wait on a lock or build an index on a big table: the statement
    timeout that bounds a visitor's request must not cut an operator's migration off."""
    import threading
    import time

    import pytest
    import sqlalchemy as sa
    from flask_migrate import upgrade

    if not app_config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("statement timeouts are a PostgreSQL setting")
    slow = make_app({**app_config, "DATABASE_STATEMENT_TIMEOUT": 1})
    locked, done = threading.Event(), threading.Event()

    def hold_the_version_table() -> None:  # as a long transaction of another process would
        engine = sa.create_engine(app_config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as conn:
            conn.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            time.sleep(2.5)
        engine.dispose()
        done.set()

    holder = threading.Thread(target=hold_the_version_table)
    holder.start()
    assert locked.wait(30)
    with slow.app_context():
        upgrade()  # waits about 2.5 s for the lock: more than the 1 s a request may take
        assert done.is_set()
    holder.join()

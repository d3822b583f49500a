"""Operator commands, run through Flask's CLI runner."""

import sqlalchemy as sa

from app.auth.models import User
from app.db import db
from app.leads.models import Lead, StageChange


def test_create_user(runner):
    result = runner.invoke(args=["create-user", "Boss@Example.com", "--role", "admin",
                                 "--password", "a long password"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(sa.select(User))
    assert (user.email, user.role) == ("boss@example.com", "admin")
    assert user.check_password("a long password")


def test_create_user_refuses_a_duplicate_and_a_short_password(runner):
    runner.invoke(args=["create-user", "a@example.com", "--role", "sales", "--password", "x" * 12])
    dup = runner.invoke(args=["create-user", "A@example.com", "--role", "sales", "--password", "y" * 12])
    assert dup.exit_code != 0 and "already exists" in dup.output
    short = runner.invoke(args=["create-user", "b@example.com", "--role", "sales", "--password", "short"])
    assert short.exit_code != 0 and "at least 10" in short.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_create_user_refuses_an_unknown_role(runner):
    result = runner.invoke(args=["create-user", "a@example.com", "--role", "boss", "--password", "x" * 12])
    assert result.exit_code != 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_seed_demo_is_idempotent_and_prints_how_to_sign_in(runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "marketer@example.com / kindling-demo" in first.output
    counts = (db.session.scalar(sa.select(sa.func.count()).select_from(User)),
              db.session.scalar(sa.select(sa.func.count()).select_from(Lead)),
              db.session.scalar(sa.select(sa.func.count()).select_from(StageChange)))
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert counts == (db.session.scalar(sa.select(sa.func.count()).select_from(User)),
                      db.session.scalar(sa.select(sa.func.count()).select_from(Lead)),
                      db.session.scalar(sa.select(sa.func.count()).select_from(StageChange)))
    assert counts[0] == 3 and counts[1] >= 3


def test_seed_demo_refuses_production(app_config, make_app):
    app_config.update(KINDLING_ENV="production", SENDGRID_API_KEY="SG.x", SECRET_KEY="k" * 40,
                      BASE_URL="https://go.example.com",
                      SQLALCHEMY_DATABASE_URI="postgresql+psycopg://u@127.0.0.1:1/x")
    result = make_app(app_config).test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0 and "production" in result.output


def _doctor(app):
    return app.test_cli_runner().invoke(args=["doctor"])


def test_doctor_all_green_with_a_worker_running(app, redis_conn):

    from rq import Queue, Worker

    # A live worker registered in Redis, as `make run` has.
    worker = Worker([Queue("default", connection=redis_conn)], connection=redis_conn)
    worker.register_birth()
    from rq.cron import CronScheduler

    cron = CronScheduler(connection=redis_conn)
    cron.register_birth()
    try:
        result = _doctor(app)
    finally:
        worker.register_death()
        cron.register_death()
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and "WARN" not in result.output
    for name in ("database", "migrations", "redis", "workers", "mail"):
        assert f"OK    {name}" in result.output


def test_doctor_names_a_stopped_redis(app_config, make_app):
    app_config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    result = _doctor(make_app(app_config))
    assert result.exit_code == 1
    assert "FAIL  redis" in result.output and "cannot reach Redis" in result.output
    assert "OK    database" in result.output


def test_doctor_names_a_bad_database_url(app_config, make_app):
    app_config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    result = _doctor(make_app(app_config))
    assert result.exit_code == 1
    assert "FAIL  database" in result.output and "Check DATABASE_URL" in result.output


def test_doctor_names_an_unmigrated_database(app_config, tmp_path, make_app):
    app_config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'empty.db'}"
    result = _doctor(make_app(app_config))
    assert result.exit_code == 1
    assert "FAIL  migrations" in result.output and "db upgrade" in result.output

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
    assert counts[0] == 4 and counts[1] >= 3
    former = db.session.scalar(sa.select(User).where(User.email == "former.rep@example.com"))
    assert not former.active  # the deactivated colleague the Users page shows
    assert "/password-reset" in first.output


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


def _webhook_public_key() -> str:
    """A real P-256 public key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def _line(output: str, name: str) -> str:
    return next((line for line in output.splitlines() if f"  {name}  " in line + "  "), "")


def test_doctor_fails_a_malformed_webhook_public_key(app_config, make_app):
    app_config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnot-a-key"
    result = _doctor(make_app(app_config))
    assert result.exit_code == 1
    line = _line(result.output, "webhook key")
    assert line.startswith("FAIL") and "SENDGRID_WEBHOOK_PUBLIC_KEY" in line


def test_doctor_accepts_a_real_webhook_public_key(app_config, make_app):
    app_config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = _webhook_public_key()
    assert _line(_doctor(make_app(app_config)).output, "webhook key").startswith("OK")


def test_doctor_tries_the_sendgrid_key_with_one_read_only_call(app_config, make_app,
                                                               fake_sendgrid):
    fake_sendgrid.api_keys = {"SG.right"}
    app_config.update(SENDGRID_API_HOST=fake_sendgrid.url, SENDGRID_API_KEY="SG.wrong",
                      SENDGRID_WEBHOOK_PUBLIC_KEY=_webhook_public_key())
    result = _doctor(make_app(app_config))
    assert result.exit_code == 1
    line = _line(result.output, "mail")
    assert line.startswith("FAIL") and "SENDGRID_API_KEY" in line and "401" in line
    (call,) = fake_sendgrid.requests
    assert (call.method, call.path) == ("GET", "/v3/scopes")
    assert call.headers["Authorization"] == "Bearer SG.wrong"
    assert fake_sendgrid.mail_sends == []


def test_doctor_passes_a_working_sendgrid_key(app_config, make_app, fake_sendgrid):
    fake_sendgrid.api_keys = {"SG.right"}
    app_config.update(SENDGRID_API_HOST=fake_sendgrid.url, SENDGRID_API_KEY="SG.right",
                      SENDGRID_WEBHOOK_PUBLIC_KEY=_webhook_public_key())
    result = _doctor(make_app(app_config))
    assert _line(result.output, "mail").startswith("OK"), result.output
    assert [r.method for r in fake_sendgrid.requests] == ["GET"]


def test_doctor_names_a_sendgrid_key_that_may_not_send_mail(app_config, make_app, fake_sendgrid):
    fake_sendgrid.scopes = ["stats.read"]
    app_config.update(SENDGRID_API_HOST=fake_sendgrid.url, SENDGRID_API_KEY="SG.readonly")
    line = _line(_doctor(make_app(app_config)).output, "mail")
    assert line.startswith("FAIL") and "mail.send" in line


def test_doctor_names_an_unreachable_sendgrid(app_config, make_app):
    app_config.update(SENDGRID_API_HOST="http://127.0.0.1:1", SENDGRID_API_KEY="SG.x")
    line = _line(_doctor(make_app(app_config)).output, "mail")
    assert line.startswith("FAIL") and "cannot reach SendGrid" in line

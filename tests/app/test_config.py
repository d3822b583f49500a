"""Configuration: environment over defaults, and production refuses to start half-configured."""

import pytest

from app.config import ConfigError, from_environ, normalise_database_url


def test_production_without_a_secret_refuses_to_start(tmp_path, make_app):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        make_app({"KINDLING_ENV": "production", "INSTANCE_PATH": str(tmp_path)})


def test_production_names_every_missing_setting(tmp_path, make_app):
    with pytest.raises(ConfigError) as caught:
        make_app({"KINDLING_ENV": "production", "SECRET_KEY": "s", "INSTANCE_PATH": str(tmp_path)})
    for name in ("SENDGRID_API_KEY", "POSTAL_ADDRESS", "REDIS_URL", "DATABASE_URL"):
        assert name in str(caught.value)


def test_development_generates_and_keeps_a_secret(tmp_path, redis_url, make_app):
    config = {"INSTANCE_PATH": str(tmp_path), "REDIS_URL": redis_url}
    first = make_app(config).config["SECRET_KEY"]
    assert len(first) >= 32
    assert make_app(config).config["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_environment_names_map_to_settings():
    settings = from_environ({"DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://h:6379/1",
                             "SENDGRID_API_HOST": "http://127.0.0.1:9999", "UNRELATED": "x"})
    assert settings == {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@h/db",
                        "REDIS_URL": "redis://h:6379/1", "SENDGRID_API_HOST": "http://127.0.0.1:9999"}


def test_database_urls_pick_psycopg():
    assert normalise_database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_body_size_is_limited(client):
    response = client.post("/login", data={"email": "a" * (3 * 1024 * 1024)})
    assert response.status_code == 413


def _production(tmp_path, **overrides):
    config = {"KINDLING_ENV": "production", "INSTANCE_PATH": str(tmp_path),
              "SECRET_KEY": "k" * 40, "SENDGRID_API_KEY": "SG.key", "REDIS_URL": "redis://r:6379/0",
              "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@db/kindling",
              "MAIL_FROM": "Acme <hello@acme.example>", "POSTAL_ADDRESS": "Acme Ltd, 1 High St",
              "BASE_URL": "https://go.acme.example"}
    config.update(overrides)
    return config


def test_production_refuses_every_unsafe_setting_at_once_one_line_each(tmp_path, make_app):
    config = _production(tmp_path, BASE_URL="http://go.acme.example", SECRET_KEY="s",
                         POSTAL_ADDRESS="   ")
    del config["MAIL_FROM"]
    with pytest.raises(ConfigError) as caught:
        make_app(config)
    lines = str(caught.value).splitlines()
    problems = [line for line in lines if line.startswith("- ")]
    assert len(problems) == 4, lines
    text = "\n".join(problems)
    assert "BASE_URL" in text and "https" in text
    assert "MAIL_FROM" in text
    assert "SECRET_KEY" in text and "32" in text
    assert "POSTAL_ADDRESS" in text


def test_production_starts_with_a_complete_https_setup(tmp_path, make_app):
    app = make_app(_production(tmp_path))
    assert app.config["MAIL_FROM"] == "Acme <hello@acme.example>"
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]


def test_development_still_has_a_sender_by_default(tmp_path, redis_url, make_app):
    app = make_app({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": redis_url})
    assert app.config["MAIL_FROM"]


def test_wsgi_refusal_is_plain_lines_without_a_traceback(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    env = {"PATH": "/usr/bin:/bin", "KINDLING_ENV": "production", "SECRET_KEY": "short",
           "BASE_URL": "http://x.example", "INSTANCE_PATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import wsgi"], env=env, capture_output=True,
                          text=True, cwd=str(Path(__file__).parents[2]), timeout=120,
                          check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "BASE_URL" in done.stderr and "SECRET_KEY" in done.stderr


def test_a_database_error_never_carries_the_leads_data_into_the_logs(app):
    """Errors from the database are logged (a failed spill replay, a refused batch): their
    text holds the statement, never the values it was sent, and the line logged of one
    (`brief`) is the database's own message, without PostgreSQL's DETAIL, which names the
    row's values: no address or IP reaches a log line."""
    import sqlalchemy as sa

    from app.db import db
    from app.leads.models import Lead
    from app.logs import brief

    db.session.add(Lead(email="private.person@example.com",
                        email_display="private.person@example.com"))
    db.session.commit()
    with pytest.raises(sa.exc.IntegrityError) as refused:
        db.session.execute(sa.insert(Lead).values(email="private.person@example.com",
                                                  email_display="Private.Person@example.com"))
    db.session.rollback()
    assert "INSERT INTO" in str(refused.value)
    assert "[parameters:" not in str(refused.value) and "hidden" in str(refused.value)
    line = brief(refused.value)
    assert "unique" in line.lower() and "private.person" not in line.lower()

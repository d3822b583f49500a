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

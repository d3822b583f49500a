"""The database unreachable or silent (issue 15, finding 5): visitors get Kindling's own "try
again shortly" page (503 with `Retry-After`), the API answers RFC 9457 problem details, and a
database port that accepts and never answers gives up after the connect timeout instead of
holding the request for minutes."""

from __future__ import annotations

import pytest

from tests.faults.ports import closed_port, in_thread, silent_port


def _unreachable(app_config, port: int, **extra):
    return {**app_config, "SQLALCHEMY_DATABASE_URI":
            f"postgresql+psycopg://kindling@127.0.0.1:{port}/kindling",
            "DATABASE_CONNECT_TIMEOUT": 1, **extra}


def _get(client, path: str, **kwargs):
    return in_thread(lambda: client.get(path, **kwargs), f"GET {path}")


def test_a_refused_database_gives_the_branded_try_again_page(app_config, make_app):
    client = make_app(_unreachable(app_config, closed_port())).test_client()
    response = _get(client, "/p/spring-guide")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert "Kindling" in page and "Internal Server Error" not in page
    assert "try again" in page.lower()


def test_a_silent_database_gives_up_after_the_connect_timeout(app_config, make_app):
    with silent_port() as port:
        client = make_app(_unreachable(app_config, port)).test_client()
        response = _get(client, "/p/spring-guide")
    assert response.status_code == 503
    assert "Retry-After" in response.headers


def test_the_api_answers_problem_details_when_the_database_is_down(app_config, make_app):
    client = make_app(_unreachable(app_config, closed_port())).test_client()
    response = _get(client, "/api/forms/abc123")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == 503 and body["title"]
    assert int(response.headers["Retry-After"]) > 0


def test_postgres_connections_carry_connect_and_statement_timeouts(app_config, make_app):
    app = make_app({**app_config, "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@h/db",
                    "DATABASE_CONNECT_TIMEOUT": 3, "DATABASE_STATEMENT_TIMEOUT": 20})
    connect_args = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert connect_args["connect_timeout"] == 3
    assert "statement_timeout=20000" in connect_args["options"]


@pytest.mark.parametrize("path", ["/api/no-such-thing", "/api/forms/abc/no-such-thing",
                                  "/api/forms/no-such-form"])
def test_an_unknown_api_address_is_a_problem_not_a_page(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json(force=True)["status"] == 404


def test_an_unexpected_error_gets_the_branded_page(app_config, make_app):
    app = make_app({**app_config, "TESTING": False, "PROPAGATE_EXCEPTIONS": False})

    @app.get("/_boom")
    def boom():
        raise RuntimeError("a bug")

    @app.get("/api/_boom")
    def api_boom():
        raise RuntimeError("a bug")

    client = app.test_client()
    page = client.get("/_boom")
    assert page.status_code == 500
    text = page.get_data(as_text=True)
    assert "Kindling" in text and "Internal Server Error" not in text and "a bug" not in text
    assert "Retry-After" not in page.headers
    problem = client.get("/api/_boom")
    assert problem.status_code == 500 and problem.mimetype == "application/problem+json"
    assert "a bug" not in problem.get_data(as_text=True)

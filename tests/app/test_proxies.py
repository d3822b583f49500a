"""Behind a reverse proxy (issue 15, finding 10): `TRUSTED_PROXIES=N` trusts N hops of
`X-Forwarded-For` / `-Proto` / `-Host`, so each visitor keeps their own address and their own
rate limit. The default, 0, ignores forwarded headers: a visitor cannot pick their address."""

from __future__ import annotations

import pytest


def _attempts(client, forwarded_for: str, count: int) -> list[int]:
    return [client.post("/login", data={"email": "nobody@example.com", "password": "wrong"},
                        headers={"X-Forwarded-For": forwarded_for}).status_code
            for _ in range(count)]


@pytest.fixture
def limited(app_config):
    return {**app_config, "RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "2 per minute",
            "WTF_CSRF_ENABLED": False}


def test_one_trusted_proxy_gives_each_visitor_their_own_limit(limited, make_app):
    client = make_app({**limited, "TRUSTED_PROXIES": 1}).test_client()
    assert _attempts(client, "203.0.113.5", 3)[-1] == 429
    # Another visitor behind the same proxy is not punished for the first one's attempts.
    assert _attempts(client, "198.51.100.7", 1) != [429]


def test_without_trusted_proxies_forwarded_headers_are_ignored(limited, make_app):
    client = make_app(limited).test_client()
    assert _attempts(client, "203.0.113.5", 3)[-1] == 429
    # A made-up X-Forwarded-For does not buy a fresh limit.
    assert _attempts(client, "198.51.100.7", 1) == [429]


def test_the_stored_address_is_the_visitors(app_config, make_app):
    """Two proxies in front: the address two hops back is the visitor's, and https is seen."""
    from flask import request

    from forms.hosted import client_ip

    app = make_app({**app_config, "TRUSTED_PROXIES": 2})

    @app.get("/_whoami")
    def whoami():
        return {"ip": client_ip(), "scheme": request.scheme}

    seen = app.test_client().get(
        "/_whoami", environ_base={"REMOTE_ADDR": "10.0.0.2"},
        headers={"X-Forwarded-For": "192.0.2.9, 10.0.0.1",
                 "X-Forwarded-Proto": "https, https"}).json
    assert seen == {"ip": "192.0.2.9", "scheme": "https"}


def test_trusted_proxies_comes_from_the_environment():
    from app.config import from_environ

    assert from_environ({"TRUSTED_PROXIES": "2"})["TRUSTED_PROXIES"] == 2

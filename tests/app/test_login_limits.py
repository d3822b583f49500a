"""Sign-in attempts are limited per account (whatever the address they come from) and per
address (whatever the account they try)."""

import pytest

from tests.helpers import PASSWORD, AuthActions, make_user


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://",
            "LOGIN_RATE_LIMIT": "10 per minute", "LOGIN_ACCOUNT_RATE_LIMIT": "5 per minute"}


def _attempt(client, email, password="wrong password", ip="198.51.100.1"):
    token = AuthActions(client).csrf()
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


def test_one_account_is_locked_for_a_while_whatever_address_tries_it(app, client):
    make_user("m@example.com")
    make_user("other@example.com")
    for n in range(5):
        assert _attempt(client, "m@example.com", ip=f"203.0.113.{n}").status_code == 401
    refused = _attempt(client, " M@Example.com ", PASSWORD, ip="192.0.2.77")
    assert refused.status_code == 429
    assert "Too many" in refused.get_data(as_text=True)
    # Another account is not affected by the attack on this one.
    assert _attempt(client, "other@example.com", PASSWORD, ip="192.0.2.78").status_code == 302


def test_one_address_is_limited_whatever_accounts_it_tries(app, client):
    for n in range(10):
        assert _attempt(client, f"user{n}@example.com").status_code == 401
    assert _attempt(client, "user99@example.com").status_code == 429
    make_user("m@example.com")
    assert _attempt(client, "m@example.com", PASSWORD, ip="192.0.2.1").status_code == 302


def test_reset_links_are_limited_per_account_whatever_address_asks(app, client):
    from tests.helpers import csrf_from

    app.config["PASSWORD_RESET_RATE_LIMIT"] = "2 per hour"

    def ask(ip):
        token = csrf_from(client.get("/password-reset").get_data(as_text=True))
        return client.post("/password-reset", data={"email": "m@example.com",
                                                    "csrf_token": token},
                           environ_base={"REMOTE_ADDR": ip})

    assert [ask(f"203.0.113.{n}").status_code for n in range(3)] == [303, 303, 429]

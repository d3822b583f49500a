"""Sessions and the remember-me cookie can be revoked (issue 15, finding 14): signing out, a
password change and deactivation each end every copy of the cookies; remember-me lasts 30
days, differs per sign-in and is SameSite=Lax."""

from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask

from app.auth.models import User
from app.db import db
from tests.helpers import PASSWORD, AuthActions, make_user

REMEMBER = "remember_token"


def _remembered_login(client, email="m@example.com") -> str:
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "remember": "y",
                                           "csrf_token": AuthActions(client).csrf()})
    assert response.status_code == 302
    return client.get_cookie(REMEMBER).value


def _admin_status(app: Flask, client) -> int:
    """GET /admin/ as a request of its own: a fresh app context, so nothing the test's outer
    context remembers (Flask-Login keeps the user in `g`) decides who is signed in."""
    with app.app_context():
        return client.get("/admin/").status_code


def _opens_admin_with(app: Flask, name: str, value: str) -> bool:
    """A fresh browser holding only a copy of cookie `name` asks for the admin."""
    thief = app.test_client()
    thief.set_cookie(name, value)
    return _admin_status(app, thief) == 200


def test_the_remember_cookie_lasts_30_days_and_is_samesite_lax(app, client):
    make_user("m@example.com")
    _remembered_login(client)
    response_cookie = client.get_cookie(REMEMBER)
    assert response_cookie.http_only and response_cookie.same_site == "Lax"
    lifetime = response_cookie.expires - datetime.now(UTC)
    assert timedelta(days=29) < lifetime <= timedelta(days=30, minutes=1)


def test_a_remember_cookie_alone_opens_the_admin_until_sign_out(app, client):
    make_user("m@example.com")
    copy = _remembered_login(client)
    assert _opens_admin_with(app, REMEMBER, copy)
    session_copy = client.get_cookie("session").value
    AuthActions(client).logout()
    assert not _opens_admin_with(app, REMEMBER, copy)
    assert not _opens_admin_with(app, "session", session_copy)


def test_the_remember_cookie_differs_per_sign_in(app, client):
    make_user("m@example.com")
    first = _remembered_login(client)
    with app.app_context():  # another browser, a request of its own
        assert _remembered_login(app.test_client()) != first
    assert _opens_admin_with(app, REMEMBER, first)  # a second device does not end the first


def test_a_password_change_ends_every_session(app, client):
    user = make_user("m@example.com")
    copy = _remembered_login(client)
    user.set_password("a brand new password")
    db.session.commit()
    assert not _opens_admin_with(app, REMEMBER, copy)
    assert _admin_status(app, client) == 302  # the browser that signed in, too


def test_deactivation_ends_every_session(app, client):
    user = make_user("m@example.com")
    copy = _remembered_login(client)
    user.deactivate()
    db.session.commit()
    assert not _opens_admin_with(app, REMEMBER, copy)
    assert _admin_status(app, client) == 302


def test_a_remember_cookie_older_than_30_days_is_refused_by_the_server(app, client):
    make_user("m@example.com")
    copy = _remembered_login(client)
    with time_machine.travel(datetime.now(UTC) + timedelta(days=31)):
        assert not _opens_admin_with(app, REMEMBER, copy)


def test_a_session_from_before_revocation_support_is_refused(app, client):
    """Cookies that name only the user id (issued before this change) no longer sign in."""
    user = make_user("m@example.com")
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
    assert _admin_status(app, client) == 302
    assert db.session.get(User, user.id).session_version == 1

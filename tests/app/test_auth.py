"""Signing in, and every way in is refused without the right credentials, role and token."""

import sqlalchemy as sa

from app.auth.models import User
from app.db import db
from tests.helpers import PASSWORD, make_user


def test_login_page_is_served(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<label for="email">Email</label>' in html
    assert 'name="csrf_token"' in html


def test_admin_pages_need_login(client):
    response = client.get("/admin/leads/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_right_password_signs_in(client, auth):
    make_user("m@example.com", "marketer")
    response = auth.login("m@example.com")
    assert response.status_code == 302
    assert client.get("/admin/leads/").status_code == 200
    assert db.session.scalar(sa.select(User.last_login_at).where(User.email == "m@example.com"))


def test_wrong_password_is_refused(client, auth):
    make_user("m@example.com", "marketer")
    response = auth.login("m@example.com", "not the password")
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/admin/leads/").status_code == 302  # still signed out
    assert db.session.scalar(sa.select(User.last_login_at)) is None


def test_unknown_user_is_refused_with_the_same_message(client, auth):
    response = auth.login("nobody@example.com")
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)


def test_inactive_user_is_refused(client, auth):
    user = make_user("gone@example.com", "marketer")
    user.active = False
    db.session.commit()
    assert auth.login("gone@example.com").status_code == 401


def test_sales_user_cannot_open_a_marketer_page(client, auth):
    auth.login_as("sales")
    assert client.get("/admin/outbox/").status_code == 403
    assert client.get("/admin/leads/").status_code == 200  # shared page is fine


def test_marketer_cannot_manage_users(client, auth):
    auth.login_as("marketer")
    before = db.session.scalar(sa.select(sa.func.count()).select_from(User))
    response = client.post("/admin/users", data={"email": "x@example.com", "role": "admin",
                                                 "password": "x" * 12,
                                                 "csrf_token": auth.csrf("/admin/")})
    assert response.status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == before


def test_missing_csrf_token_is_refused_and_nothing_changes(client, auth):
    auth.login_as("admin")
    response = client.post("/admin/users", data={"email": "new@example.com", "role": "sales",
                                                 "password": "long enough password"})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(User).where(User.email == "new@example.com")) is None


def test_login_without_csrf_token_is_refused(client):
    make_user("m@example.com", "marketer")
    response = client.post("/login", data={"email": "m@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/leads/").status_code == 302


def test_admin_creates_a_user_who_can_sign_in(client, auth):
    auth.login_as("admin")
    response = client.post("/admin/users", data={"email": "New@Example.com", "role": "sales",
                                                 "name": "New", "password": "long enough pw",
                                                 "csrf_token": auth.csrf("/admin/users")})
    assert response.status_code == 302
    auth.logout()
    assert auth.login("new@example.com", "long enough pw").status_code == 302


def test_passwords_are_stored_hashed_with_a_kdf(app):
    user = make_user("m@example.com", "marketer")
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("scrypt:")
    assert user.check_password(PASSWORD) and not user.check_password(PASSWORD + "x")


def test_next_parameter_never_redirects_off_site(client, auth):
    make_user("m@example.com", "marketer")
    token = auth.csrf()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post(f"/login?next={target}", data={
            "email": "m@example.com", "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 302
        assert response.headers["Location"] == "/admin/"
        client.post("/logout", data={"csrf_token": auth.csrf("/admin/")})


def test_login_is_rate_limited(app_config, make_app):
    
    app_config.update(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute")
    app = make_app(app_config)
    client = app.test_client()
    statuses = [client.post("/login", data={"email": "a@example.com", "password": "x"}).status_code
                for _ in range(5)]
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3:] == [429, 429]

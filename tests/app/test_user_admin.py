"""Admins edit users (name, email, role, a new password) and deactivate or reactivate them;
nobody can lock the admins out."""

import sqlalchemy as sa

from app.auth.models import User
from app.db import db
from tests.helpers import PASSWORD, AuthActions, make_user


def _form(user: User, **changes) -> dict:
    data = {"email": user.email, "name": user.name, "role": user.role, "password": ""}
    if user.active:
        data["active"] = "y"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _save(client, auth, user, **changes):
    page = f"/admin/users/{user.id}"
    return client.post(page, data={**_form(user, **changes), "csrf_token": auth.csrf(page)})


def _reload(user_id: int) -> User:
    db.session.expire_all()
    return db.session.get(User, user_id)


def test_the_users_list_links_to_each_users_page(client, auth):
    auth.login_as("admin")
    rep = make_user("rep@example.com", "sales")
    html = client.get("/admin/users").get_data(as_text=True)
    assert f'href="/admin/users/{rep.id}"' in html


def test_an_admin_edits_name_email_and_role(client, auth):
    auth.login_as("admin")
    rep = make_user("rep@example.com", "sales")
    response = _save(client, auth, rep, name="Rita Rep", email="Rita@Example.com",
                     role="marketer")
    assert response.status_code == 302
    saved = _reload(rep.id)
    assert (saved.name, saved.email, saved.role) == ("Rita Rep", "rita@example.com", "marketer")
    assert "Rita Rep" in client.get("/admin/users").get_data(as_text=True)


def test_an_admin_sets_a_new_password(app, client, auth):
    auth.login_as("admin")
    rep = make_user("rep@example.com", "sales")
    assert _save(client, auth, rep, password="a fresh long password").status_code == 302
    with app.app_context():
        other = AuthActions(app.test_client())
        assert other.login("rep@example.com", PASSWORD).status_code == 401
        assert other.login("rep@example.com", "a fresh long password").status_code == 302


def test_a_short_new_password_is_refused_and_nothing_changes(client, auth):
    auth.login_as("admin")
    rep = make_user("rep@example.com", "sales")
    response = _save(client, auth, rep, password="short", name="Changed")
    assert response.status_code == 400
    assert "at least 10" in response.get_data(as_text=True)
    assert _reload(rep.id).name == "Rep" and _reload(rep.id).check_password(PASSWORD)


def test_an_admin_deactivates_and_reactivates_a_user(app, client, auth):
    auth.login_as("admin")
    rep = make_user("rep@example.com", "sales")
    version = rep.session_version
    assert _save(client, auth, rep, active=None).status_code == 302
    saved = _reload(rep.id)
    assert not saved.active and saved.session_version > version  # their sessions ended
    with app.app_context():
        assert AuthActions(app.test_client()).login("rep@example.com").status_code == 401
    assert _save(client, auth, saved, active="y").status_code == 302
    assert _reload(rep.id).active


def test_a_taken_email_is_refused(client, auth):
    auth.login_as("admin")
    rep = make_user("rep@example.com", "sales")
    make_user("taken@example.com", "sales")
    response = _save(client, auth, rep, email="taken@example.com")
    assert response.status_code == 400
    assert "exists" in response.get_data(as_text=True)
    assert _reload(rep.id).email == "rep@example.com"


def test_an_admin_cannot_deactivate_or_demote_themselves(client, auth):
    auth.login_as("admin")
    me = db.session.scalar(sa.select(User).where(User.email == "admin@example.com"))
    response = _save(client, auth, me, active=None)
    assert response.status_code == 400
    assert "your own" in response.get_data(as_text=True)
    response = _save(client, auth, me, role="marketer")
    assert response.status_code == 400
    saved = _reload(me.id)
    assert saved.active and saved.role == "admin"


def test_only_admins_edit_users(client, auth):
    auth.login_as("marketer")
    rep = make_user("rep@example.com", "sales")
    page = f"/admin/users/{rep.id}"
    assert client.get(page).status_code == 403
    assert client.post(page, data={**_form(rep, active=None),
                                   "csrf_token": auth.csrf("/admin/")}).status_code == 403
    assert _reload(rep.id).active


def test_an_unknown_user_is_not_found(client, auth):
    auth.login_as("admin")
    assert client.get("/admin/users/9999").status_code == 404


def test_the_add_a_user_form_offers_marketer_not_admin_by_default(client, auth):
    auth.login_as("admin")
    html = client.get("/admin/users").get_data(as_text=True)
    form = html[html.index('name="role"'):]
    form = form[:form.index("</select>")]
    assert 'value="marketer" selected' in form or 'selected value="marketer"' in form
    assert 'value="admin" selected' not in form

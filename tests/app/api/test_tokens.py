"""API tokens: made once, stored hashed, revocable; the CLI and the admin page."""

from __future__ import annotations

import sqlalchemy as sa

from app.api import tokens
from app.api.models import ApiToken
from app.db import db
from tests.helpers import csrf_from, make_user


def test_cli_creates_a_token_printed_once_and_stored_only_as_a_hash(app, runner):
    make_user("ops@example.com", "marketer")
    result = runner.invoke(args=["api-token", "create", "ops@example.com", "--scope", "write",
                                 "--name", "Warehouse sync"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("kdl_") and len(token) > 40
    row = db.session.scalar(sa.select(ApiToken))
    assert row is not None and row.scope == "write" and row.name == "Warehouse sync"
    assert token not in (row.token_hash, row.prefix) and row.token_hash == tokens.hash_token(token)
    assert tokens.authenticate(token) is not None
    listing = runner.invoke(args=["api-token", "list"])
    assert "Warehouse sync" in listing.output and token not in listing.output


def test_cli_refuses_an_unknown_user_and_a_bad_scope(app, runner):
    result = runner.invoke(args=["api-token", "create", "nobody@example.com", "--name", "x"])
    assert result.exit_code != 0 and "No user" in result.output
    make_user("ops@example.com", "marketer")
    result = runner.invoke(args=["api-token", "create", "ops@example.com", "--scope", "admin",
                                 "--name", "x"])
    assert result.exit_code != 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_revoked_token_and_inactive_user_stop_working(app, runner):
    user = make_user("ops@example.com", "marketer")
    row, token = tokens.issue(user, "CRM", "read")
    _other, other_token = tokens.issue(user, "BI", "read")
    db.session.commit()
    assert runner.invoke(args=["api-token", "revoke", str(row.id)]).exit_code == 0
    assert tokens.authenticate(token) is None
    assert tokens.authenticate(other_token) is not None
    user.active = False
    db.session.commit()
    assert tokens.authenticate(other_token) is None
    assert tokens.authenticate("kdl_not-a-token") is None


def test_admin_page_shows_a_new_token_once_and_revokes_it(app, client, auth):
    auth.login_as("marketer")
    page = client.get("/admin/api-tokens/")
    assert page.status_code == 200 and "No tokens yet" in page.get_data(as_text=True)
    made = client.post("/admin/api-tokens/", data={
        "name": "Zapier", "scope": "write", "csrf_token": csrf_from(page.get_data(as_text=True))})
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and "shown only this once" in html
    row = db.session.scalar(sa.select(ApiToken))
    assert row is not None
    start = html.index('value="kdl_') + len('value="')
    token = html[start:html.index('"', start)]
    assert tokens.hash_token(token) == row.token_hash
    again = client.get("/admin/api-tokens/").get_data(as_text=True)
    assert token not in again and row.prefix in again and "Zapier" in again
    revoked = client.post(f"/admin/api-tokens/{row.id}/revoke",
                          data={"csrf_token": csrf_from(again)}, follow_redirects=True)
    assert "revoked" in revoked.get_data(as_text=True)
    assert tokens.authenticate(token) is None


def test_admin_page_refuses_a_blank_name_and_others_tokens(app, client, auth):
    owner = make_user("other@example.com", "marketer")
    theirs, _ = tokens.issue(owner, "Theirs", "read")
    db.session.commit()
    auth.login_as("sales")
    page = client.get("/admin/api-tokens/").get_data(as_text=True)
    assert "Theirs" not in page
    blank = client.post("/admin/api-tokens/", data={"name": " ", "scope": "read",
                                                     "csrf_token": csrf_from(page)})
    assert blank.status_code == 400
    refused = client.post(f"/admin/api-tokens/{theirs.id}/revoke",
                          data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 403
    assert db.session.get(ApiToken, theirs.id).revoked_at is None

"""Authorization matrix, generated from `app.url_map`: every route under /admin/ and /sales/
(but the emailed token pages) sends anonymous visitors to the login page (or answers 401) and
refuses an admin's POST without a CSRF token (400); every /api/v1/ route but the docs needs a
bearer token (401); a signed-in user of the wrong role gets 403 on the routes the tables below
give to other roles. New routes join the first two checks by their address alone. Nothing here
needs data: the checks come before any lookup, so made-up ids are enough."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.routing import Rule

from tests.helpers import csrf_from

# Who may use each staff route (admins pass every check). Keys are endpoints, or a blueprint
# name followed by "." for all of its endpoints.
MARKETER = {"nurture.", "forms.", "campaigns.", "mail.", "tracking_admin.", "nurture_lead.",
            "privacy.purposes", "privacy.edit_purpose", "privacy.export_lead"}
SALES = {"sales.decide_on_page"}
ADMIN = {"sales.settings", "auth.users", "auth.edit_user", "privacy.erase_lead", "webhooks."}
STAFF = {"admin.dashboard", "leads.", "scoring.", "reports.", "pickers.", "outcomes.record",
         "sales.queue",
         "sales.export_form", "sales.export_csv", "api_admin."}
# Open to anyone, each protected its own way (a signed token, a signature, a bearer token, the
# Origin check), or public by nature. tests/security/test_tokens.py covers the token routes.
PUBLIC = {"index", "static", "auth.login", "auth.logout", "landing.", "forms_api.",
          "forms_embed.", "forms_confirm.", "downloads.", "tracking.", "nurture_public.",
          "sales.accept", "sales.reject", "crm_webhook.", "tracking_webhook.",
          "api-docs.", "api_docs.", "password_reset."}
# The REST API: every route under /api/v1/ but its documentation needs a bearer token.
API_PREFIX = "/api/v1/"
STAFF_PREFIXES = ("/admin/", "/admin", "/sales/")
WRONG_ROLES = {"marketer": SALES | ADMIN, "sales": MARKETER | ADMIN}
CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def _matches(endpoint: str, keys: set[str]) -> bool:
    return any(endpoint == k or (k.endswith(".") and endpoint.startswith(k)) for k in keys)


def _staff_rules(app: Flask) -> list[Rule]:
    """Every route of the staff area (by address), and every route the role tables name."""
    return [r for r in app.url_map.iter_rules()
            if (r.rule.startswith(STAFF_PREFIXES) and not _matches(r.endpoint, PUBLIC))
            or _matches(r.endpoint, MARKETER | SALES | ADMIN | STAFF)]


def _url(rule: Rule) -> str:
    values = {name: 987654 if type(rule._converters[name]).__name__ == "IntegerConverter"
              else "nope" for name in rule.arguments}
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def _calls(rules: list[Rule]) -> list[tuple[str, str]]:
    return [(method, _url(rule)) for rule in rules
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]


def _api_rules(app: Flask) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if r.rule.startswith(API_PREFIX)
            and not _matches(r.endpoint, {"api-docs.", "api_docs."})]


def test_the_tables_name_real_routes(app):
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    stale = [key for key in MARKETER | SALES | ADMIN | STAFF | PUBLIC
             if not any(e == key or (key.endswith(".") and e.startswith(key)) for e in endpoints)]
    assert stale == []
    staff = {r.endpoint for r in _staff_rules(app)}
    assert {"auth.users", "sales.settings", "nurture.edit_step", "leads.show"} <= staff


def test_the_api_needs_a_bearer_token(app, client):
    calls = _calls(_api_rules(app))
    assert len(calls) > 5
    wrong = []
    for method, url in calls:
        for headers in ({}, {"Authorization": "Bearer not-a-token"},
                        {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            response = client.open(url, method=method, headers=headers, json={})
            if response.status_code != 401:
                wrong.append((method, url, headers, response.status_code))
    assert wrong == []


def _csrf_header(client, page: str = "/admin/") -> dict[str, str]:
    """A valid token of this session (from the login page for a visitor, else the admin)."""
    return {"X-CSRFToken": csrf_from(client.get(page).get_data(as_text=True))}


def test_anonymous_visitors_are_sent_to_the_login_page(app, client):
    headers = _csrf_header(client, "/login")  # valid: the login check, not CSRF, must refuse
    calls = _calls(_staff_rules(app))
    assert len(calls) > 50
    wrong = []
    for method, url in calls:
        response = client.open(url, method=method, headers=headers)
        location = response.headers.get("Location", "")
        if not (response.status_code == 401 or (response.status_code == 302
                                                  and "/login" in location)):
            wrong.append((method, url, response.status_code, location))
    assert wrong == []


@pytest.mark.parametrize("role", sorted(WRONG_ROLES))
def test_the_wrong_role_gets_403(app, client, auth, role):
    auth.login_as(role)
    headers = _csrf_header(client)
    rules = [r for r in _staff_rules(app) if _matches(r.endpoint, WRONG_ROLES[role])]
    assert rules
    wrong = [(method, url, status) for method, url in _calls(rules)
             if (status := client.open(url, method=method, headers=headers).status_code) != 403]
    assert wrong == []


def test_an_admin_post_without_a_csrf_token_is_refused(app, client, auth):
    auth.login_as("admin")
    calls = [(m, u) for m, u in _calls(_staff_rules(app)) if m in CHANGING]
    calls.append(("POST", "/logout"))
    assert len(calls) > 20
    wrong = [(method, url, status) for method, url in calls
             if (status := client.open(url, method=method).status_code) != 400]
    assert wrong == []
    assert client.get("/admin/").status_code == 200  # still signed in: nothing acted


def test_a_sales_user_cannot_act_on_the_marketers_screens_with_a_valid_token(app, client, auth):
    """The same 403 with a valid token too: the role check is not the CSRF check."""
    auth.login_as("sales")
    headers = _csrf_header(client)
    assert client.post("/admin/nurture/", data={"name": "x"}, headers=headers).status_code == 403
    assert client.post("/admin/forms/", data={"name": "x"}, headers=headers).status_code == 403

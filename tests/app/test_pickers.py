"""Pickers: things chosen by name from a small JSON endpoint, for staff only."""

from __future__ import annotations

import pytest

from app import pickers
from app.db import db
from app.leads.service import upsert_lead


@pytest.fixture
def leads(app):
    made = [upsert_lead(email, values).lead for email, values in (
        ("ann@acme.example.com", {"first_name": "Ann", "last_name": "Lee", "company": "Acme"}),
        ("bob@beta.example.com", {"first_name": "Bob", "company": "Beta"}),
        ("odd@example.com", {"first_name": "<script>alert(1)</script>"}),
    )]
    db.session.commit()
    return made


def test_suggestions_are_for_signed_in_staff_only(client, auth, leads):
    assert client.get("/admin/api/pick/lead?q=ann").status_code == 302  # to the login page
    auth.login_as("sales")
    response = client.get("/admin/api/pick/lead?q=ann")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "no-store" in response.headers["Cache-Control"]
    assert client.get("/admin/api/pick/nothing?q=x").status_code == 404


def test_leads_are_found_by_name_email_company_or_id(client, auth, leads):
    ann, bob, odd = leads
    auth.login_as("marketer")

    def found(query: str) -> list[int]:
        return [o["id"] for o in client.get("/admin/api/pick/lead",
                                            query_string={"q": query}).get_json()["options"]]

    assert found("ann@") == [ann.id]
    assert found("lee") == [ann.id]
    assert found("BETA") == [bob.id]
    assert found(f"#{bob.id}")[0] == bob.id
    assert found("%") == []  # a wildcard is a character like any other
    option = client.get("/admin/api/pick/lead?q=ann").get_json()["options"][0]
    assert option == {"id": ann.id, "label": "Ann Lee <ann@acme.example.com>",
                      "value": f"Ann Lee <ann@acme.example.com> (#{ann.id})"}
    odd = client.get("/admin/api/pick/lead?q=script")  # lead-typed text, as data
    assert odd.mimetype == "application/json" and odd.headers["X-Content-Type-Options"] == \
        "nosniff"
    assert odd.get_json()["options"][0]["label"].startswith("<script>")  # admin.js: as text


def test_what_is_typed_resolves_to_an_id_or_says_what_is_wrong(app, leads):
    ann = leads[0]
    assert pickers.resolve("lead", f"Ann Lee <ann@acme.example.com> (#{ann.id})") == ann.id
    assert pickers.resolve("lead", str(ann.id)) == ann.id
    assert pickers.resolve("lead", "ANN@acme.example.com ") == ann.id
    assert pickers.resolve("lead", "") is None
    with pytest.raises(pickers.PickError, match="There is no lead #999."):
        pickers.resolve("lead", "999")
    assert pickers.resolve("lead", "999", must_exist=False) == 999
    with pytest.raises(pickers.PickError, match="No lead matches “Zed”"):
        pickers.resolve("lead", "Zed")


def test_a_long_list_becomes_a_search_box_and_a_short_one_a_select(app, client, auth, leads):
    from tests.nurture.factories import email_step, make_sequence

    sequence = make_sequence(email_step())
    step_page = f"/admin/nurture/{sequence.id}/steps/{sequence.steps[0].id}"
    auth.login_as("marketer")
    short = client.get(step_page).get_data(as_text=True)
    assert '<select id="lead_id" name="lead_id"' in short
    assert "Ann Lee &lt;ann@acme.example.com&gt;</option>" in short

    app.config["PICKER_SELECT_MAX"] = 2
    long = client.get(f"{step_page}?lead_id={leads[0].id}").get_data(as_text=True)
    assert '<select id="lead_id"' not in long
    assert 'list="lead_id-options" data-pick-url="/admin/api/pick/lead"' in long
    assert f'value="Ann Lee &lt;ann@acme.example.com&gt; (#{leads[0].id})"' in long

"""Bodies Python's JSON reader takes but no database (or JSON client) can: NaN and Infinity,
a number too large for a float, a lone UTF-16 surrogate, nesting deeper than the reader's
recursion. Each is a 400 problem naming the fault, and nothing is written."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead
from tests.app.api.conftest import ApiClient


def _send(api: ApiClient, method: str, path: str, text: str):
    return api.client.open(path, method=method, data=text, headers={
        "Authorization": f"Bearer {api.token}", "Content-Type": "application/json"})


def _count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


BAD_VALUES = {
    "NaN": "NaN",
    "Infinity": "-Infinity",
    "a number past a float": "1e400",
    "a lone surrogate": '"\\ud800"',
    "nesting past the reader's depth": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_body_no_database_can_store_is_a_400_problem_and_writes_nothing(api: ApiClient,
                                                                           value: str):
    lead = api.post("/api/v1/leads", {"email": "ann@example.com"}).get_json()
    leads, events = _count(Lead), _count(Event)
    for method, path, text in [
        ("POST", "/api/v1/leads", '{"email": "bob@example.com", "attributes": {"x": %s}}'),
        ("POST", "/api/v1/leads", '{"email": "bob@example.com", "first_name": %s}'),
        ("PATCH", f"/api/v1/leads/{lead['id']}", '{"attributes": {"x": %s}}'),
        ("POST", "/api/v1/events", ('{"events": [{"id": "1", "type": "visit", '
                                    '"email": "bob@example.com", "data": {"x": %s}}]}')),
        ("POST", "/api/v1/events", ('{"events": [{"id": %s, "type": "visit", '
                                    '"email": "bob@example.com"}]}')),
    ]:
        response = _send(api, method, path, text % value)
        assert response.status_code == 400, (path, text, response.get_data(as_text=True))
        assert response.content_type == "application/problem+json"
        assert "JSON" in response.get_json()["detail"]
    assert (_count(Lead), _count(Event)) == (leads, events)
    assert api.get(f"/api/v1/leads/{lead['id']}").get_json()["attributes"] == {}


def test_escaped_surrogate_pairs_and_large_integers_are_still_taken(api: ApiClient):
    made = _send(api, "POST", "/api/v1/leads",
                 '{"email": "ann@example.com", "first_name": "\\ud83d\\ude00",'
                 ' "attributes": {"big": 123456789012345678901234567890, "f": 1.5e300}}')
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["first_name"] == "\U0001F600"
    assert made.get_json()["attributes"]["big"] == 123456789012345678901234567890


def test_a_body_sent_without_the_json_content_type_is_415_saying_so(api: ApiClient):
    """Before, the body was not read at all and the answer blamed the data: "email: Missing
    data for required field." for a body that carries one."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = _send_as(api, content_type, '{"email": "bob@example.com"}')
        assert response.status_code == 415, response.get_data(as_text=True)
        assert response.content_type == "application/problem+json"
        assert "application/json" in response.get_json()["detail"]
    assert _count(Lead) == 0
    assert _send_as(api, "application/json; charset=utf-8",
                    '{"email": "bob@example.com"}').status_code == 201


def _send_as(api: ApiClient, content_type: str, text: str):
    return api.client.post("/api/v1/leads", data=text, headers={
        "Authorization": f"Bearer {api.token}", "Content-Type": content_type})

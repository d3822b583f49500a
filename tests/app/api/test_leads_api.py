"""/api/v1/leads: list, get, upsert, update, stage — and the refusals an integrator meets."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from app.api import tokens
from app.db import db
from app.leads.models import Event, Lead, StageChange
from app.leads.service import upsert_lead
from app.outcomes.models import Outcome
from tests.app.api.conftest import ApiClient


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    return response.get_json()


def test_create_then_upsert_by_email_keeps_one_lead(api: ApiClient):
    made = api.post("/api/v1/leads", {"email": "Ann@Example.com ", "company": "Acme",
                                      "attributes": {"plan": "pro"}})
    assert made.status_code == 201, made.get_json()
    lead = made.get_json()
    assert lead["company"] == "Acme" and lead["attributes"] == {"plan": "pro"}
    again = api.post("/api/v1/leads", {"email": "ann@example.com", "job_title": "CTO",
                                       "company": ""})
    assert again.status_code == 200
    assert again.get_json()["id"] == lead["id"]
    assert again.get_json()["company"] == "Acme"  # a blank never erases
    assert again.get_json()["job_title"] == "CTO"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 1
    first = db.session.scalar(sa.select(StageChange))
    assert first is not None and first.actor == "api"


def test_unknown_field_wrong_type_and_bad_email_are_422_naming_the_field(api: ApiClient):
    body = _problem(api.post("/api/v1/leads", {"email": "a@example.com", "colour": "red"}), 422)
    assert body["errors"][0]["field"] == "colour" and "colour" in body["detail"]
    body = _problem(api.post("/api/v1/leads", {"email": "a@example.com", "company": 7}), 422)
    assert body["errors"][0]["field"] == "company"
    body = _problem(api.post("/api/v1/leads", {"email": "not-an-address"}), 422)
    assert body["errors"][0]["field"] == "email"
    body = _problem(api.post("/api/v1/leads", {"email": "a@example.com",
                                               "attributes": {"x": {"deep": 1}}}), 422)
    assert body["errors"][0]["field"].startswith("attributes")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0


def test_missing_revoked_and_read_only_tokens_are_refused(app, client, api: ApiClient,
                                                          read_api: ApiClient):
    body = _problem(client.get("/api/v1/leads"), 401)
    assert "Bearer" in body["detail"]
    _problem(client.get("/api/v1/leads", headers={"Authorization": "Bearer kdl_wrong"}), 401)
    assert read_api.get("/api/v1/leads").status_code == 200
    body = _problem(read_api.post("/api/v1/leads", {"email": "a@example.com"}), 403)
    assert "write" in body["detail"]
    row = tokens.authenticate(api.token)
    assert row is not None
    tokens.revoke(row)
    db.session.commit()
    _problem(api.get("/api/v1/leads"), 401)


def test_list_pages_with_a_cursor_and_filters(api: ApiClient):
    for n in range(5):
        upsert_lead(f"p{n}@example.com", {"company": "Acme" if n % 2 else "Other"})
    db.session.commit()
    first = api.get("/api/v1/leads?limit=2").get_json()
    assert [d["email"] for d in first["data"]] == ["p0@example.com", "p1@example.com"]
    second = api.get(f"/api/v1/leads?limit=2&cursor={first['next_cursor']}").get_json()
    assert [d["email"] for d in second["data"]] == ["p2@example.com", "p3@example.com"]
    third = api.get(f"/api/v1/leads?limit=2&cursor={second['next_cursor']}").get_json()
    assert [d["email"] for d in third["data"]] == ["p4@example.com"]
    assert third["next_cursor"] is None
    acme = api.get("/api/v1/leads?q=acme").get_json()["data"]
    assert {d["email"] for d in acme} == {"p1@example.com", "p3@example.com"}
    assert api.get("/api/v1/leads?stage=mql").get_json()["data"] == []
    body = _problem(api.get("/api/v1/leads?limit=201"), 422)
    assert body["errors"][0]["field"] == "limit"
    body = _problem(api.get("/api/v1/leads?cursor=bogus"), 422)
    assert body["errors"][0]["field"] == "cursor"


def test_get_patch_and_missing_lead(api: ApiClient):
    lead = upsert_lead("ann@example.com", {"company": "Acme", "plan": "pro"}).lead
    db.session.commit()
    assert api.get(f"/api/v1/leads/{lead.id}").get_json()["company"] == "Acme"
    patched = api.patch(f"/api/v1/leads/{lead.id}", {"company": "", "country": "gb",
                                                     "attributes": {"plan": None, "seats": 12}})
    assert patched.status_code == 200, patched.get_json()
    doc = patched.get_json()
    assert doc["company"] == "" and doc["country"] == "GB"
    assert doc["attributes"] == {"seats": 12}
    event = db.session.scalar(sa.select(Event).where(Event.type == "profile_updated"))
    assert event is not None and event.data["changes"]["company"] == ["Acme", ""]
    _problem(api.get("/api/v1/leads/999999"), 404)
    body = _problem(api.patch(f"/api/v1/leads/{lead.id}", {"email": "b@example.com"}), 422)
    assert body["errors"][0]["field"] == "email"


def test_stage_change_with_reason_and_a_forbidden_move(api: ApiClient):
    lead = upsert_lead("ann@example.com").lead
    db.session.commit()
    body = _problem(api.post(f"/api/v1/leads/{lead.id}/stage",
                             {"stage": "customer", "reason": "Signed"}), 422)
    assert body["errors"][0]["field"] == "stage" and "cannot move" in body["detail"]
    moved = api.post(f"/api/v1/leads/{lead.id}/stage", {"stage": "sql", "reason": "Call booked"})
    assert moved.status_code == 200 and moved.get_json()["stage"] == "sql"
    change = db.session.scalar(sa.select(StageChange).where(StageChange.to_stage == "sql"))
    assert change is not None and change.reason == "Call booked" and change.actor == "api"
    body = _problem(api.post(f"/api/v1/leads/{lead.id}/stage", {"stage": "opportunity"}), 422)
    assert body["errors"][0]["field"] == "reason"
    won = api.post(f"/api/v1/leads/{lead.id}/stage", {
        "stage": "customer", "reason": "Signed", "amount": "1200.50", "currency": "EUR",
        "external_id": "D-1"})
    assert won.status_code == 200 and won.get_json()["stage"] == "customer"
    outcome = db.session.scalar(sa.select(Outcome))
    assert outcome is not None and str(outcome.amount) == "1200.50"


def test_a_stage_move_sent_again_answers_as_the_first(api: ApiClient):
    """A client that timed out and sends the move again gets the lead back, not an error, and
    the lead's history has the move once."""
    lead = upsert_lead("ann@example.com").lead
    db.session.commit()
    move = {"stage": "sql", "reason": "Call booked"}
    first = api.post(f"/api/v1/leads/{lead.id}/stage", move)
    again = api.post(f"/api/v1/leads/{lead.id}/stage", move)
    assert first.status_code == again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StageChange)
                             .where(StageChange.to_stage == "sql")) == 1


def test_unknown_address_and_method_answer_problems(api: ApiClient):
    _problem(api.get("/api/v1/nothing-here"), 404)
    response = api.delete("/api/v1/leads")
    _problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_body_over_the_limit_is_413(app, api: ApiClient):
    app.config["API_MAX_BODY_BYTES"] = 1000
    body = _problem(api.post("/api/v1/leads", {"email": "a@example.com",
                                               "attributes": {"x": "y" * 2000}}), 413)
    assert body["status"] == 413


def test_rate_limit_per_token_with_ratelimit_headers(make_app, app_config):
    config = dict(app_config, RATELIMIT_ENABLED=True, API_RATE_LIMIT="3 per minute")
    limited = make_app(config)
    with limited.app_context():
        from tests.app.api.conftest import token_for

        first, second = token_for("a@example.com"), token_for("b@example.com")
        client = limited.test_client()
        answers = [client.get("/api/v1/leads", headers={"Authorization": f"Bearer {first}"})
                   for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["RateLimit-Limit"] == "3"
        assert answers[0].headers["RateLimit-Remaining"] == "2"
        assert answers[0].headers["RateLimit-Policy"] == "3;w=60"
        assert answers[3].content_type == "application/problem+json"
        assert "Retry-After" in answers[3].headers
        other = client.get("/api/v1/leads", headers={"Authorization": f"Bearer {second}"})
        assert other.status_code == 200  # counted per token


def test_guessing_tokens_from_one_address_is_rate_limited(make_app, app_config):
    """The per-token limit gave every made-up token a fresh allowance, so one address could
    try tokens without end. Answers of 401 are also counted per address: past the limit the
    address gets 429 for the window, whatever token it sends."""
    import secrets

    config = dict(app_config, RATELIMIT_ENABLED=True, API_RATE_LIMIT="100 per minute",
                  API_AUTH_FAILURE_RATE_LIMIT="3 per minute")
    limited = make_app(config)
    with limited.app_context():
        from tests.app.api.conftest import token_for

        real = token_for("a@example.com")
        client = limited.test_client()
        assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {real}"}
                          ).status_code == 200  # a good answer is not counted
        guesses = [client.get("/api/v1/leads", headers={
            "Authorization": f"Bearer {secrets.token_urlsafe(24)}"}).status_code
            for _ in range(5)]
        assert guesses == [401, 401, 401, 429, 429]
        other = limited.test_client().get("/api/v1/leads", environ_base={
            "REMOTE_ADDR": "203.0.113.9"}, headers={"Authorization": f"Bearer {real}"})
        assert other.status_code == 200  # another address is not held back
        assert other.headers["RateLimit-Limit"] == "100"  # the headers tell the token's limit


def test_a_lead_keeps_a_bounded_number_of_attributes_however_many_requests_add_them(
        app, api: ApiClient):
    """Each request may carry 50 attributes; the lead keeps at most ATTRIBUTES_STORED_MAX in
    all. A request that would pass it is refused whole (422 naming attributes), by PATCH and
    by POST alike, and removing some (null) makes room again."""
    from app.api.schemas import ATTRIBUTES_MAX, ATTRIBUTES_STORED_MAX

    lead_id = api.post("/api/v1/leads", {"email": "ann@example.com"}).get_json()["id"]
    for batch in range(ATTRIBUTES_STORED_MAX // ATTRIBUTES_MAX):
        added = {f"a{batch}_{n}": n for n in range(ATTRIBUTES_MAX)}
        assert api.patch(f"/api/v1/leads/{lead_id}", {"attributes": added}).status_code == 200
    body = _problem(api.patch(f"/api/v1/leads/{lead_id}", {"attributes": {"one_more": 1}}),
                    422)
    assert body["errors"][0]["field"] == "attributes"
    assert str(ATTRIBUTES_STORED_MAX) in body["errors"][0]["detail"]
    body = _problem(api.post("/api/v1/leads", {"email": "ann@example.com",
                                               "attributes": {"one_more": 1}}), 422)
    assert body["errors"][0]["field"] == "attributes"
    db.session.expire_all()
    assert len(db.session.get(Lead, lead_id).attributes) == ATTRIBUTES_STORED_MAX
    assert "one_more" not in db.session.get(Lead, lead_id).attributes
    changed = api.patch(f"/api/v1/leads/{lead_id}", {"attributes": {"a0_1": "changed"}})
    assert changed.status_code == 200  # at the bound, a value still changes
    swapped = api.patch(f"/api/v1/leads/{lead_id}", {"attributes": {"a0_0": None,
                                                                     "one_more": 1}})
    assert swapped.status_code == 200 and swapped.get_json()["attributes"]["one_more"] == 1


def test_a_misspelt_filter_is_422_naming_it_not_every_lead(api: ApiClient):
    """A query parameter the list does not know is refused like an unknown body field: a sync
    asking for `stages=customer` (for `stage`) must not be handed every lead as customers."""
    upsert_lead("ann@example.com")
    db.session.commit()
    body = _problem(api.get("/api/v1/leads?stages=customer"), 422)
    assert body["errors"][0]["field"] == "stages" and body["errors"][0]["in"] == "query"
    assert "stages" in body["detail"]
    body = _problem(api.get("/api/v1/enrollments?lead=1"), 422)
    assert body["errors"][0]["field"] == "lead"
    assert api.get("/api/v1/leads?stage=customer").get_json()["data"] == []


def test_a_forged_cursor_with_half_a_character_is_422_not_500(api: ApiClient):
    """A cursor is base64 JSON: a `\\ud800` escape in it decodes to text no database can
    take (PostgreSQL's driver cannot even encode it)."""
    import base64
    import json

    upsert_lead("ann@example.com", {"last_name": "Ames"})
    db.session.commit()
    forged = base64.urlsafe_b64encode(json.dumps(["\ud800", "a", 1]).encode()).decode()
    body = _problem(api.get("/api/v1/leads?sort=name&cursor=" + forged.rstrip("=")), 422)
    assert body["errors"][0]["field"] == "cursor"


def test_a_lead_field_sent_inside_attributes_is_422_not_cut_into_the_field(api: ApiClient):
    """`attributes: {"country": "Germany"}` made the lead's country GE (Georgia), past the
    two-letter check, and `company: 5` the company "5"; a PATCH kept it as an attribute
    instead. Both answer 422 naming the attribute."""
    made = api.post("/api/v1/leads", {"email": "ann@example.com", "country": "DE"})
    lead_id = made.get_json()["id"]
    for name, value in (("country", "Germany"), ("company", 5), ("email", "x@example.com")):
        body = _problem(api.post("/api/v1/leads", {"email": "ann@example.com",
                                                   "attributes": {name: value}}), 422)
        assert body["errors"][0]["field"].startswith("attributes") and name in body["detail"]
        body = _problem(api.patch(f"/api/v1/leads/{lead_id}", {"attributes": {name: value}}),
                        422)
        assert name in body["detail"]
    lead = api.get(f"/api/v1/leads/{lead_id}").get_json()
    assert (lead["country"], lead["company"], lead["attributes"]) == ("DE", "", {})


def test_an_erased_lead_takes_no_personal_data_back_through_the_api(api: ApiClient):
    """Erasure leaves a tombstone (its id, for reports); a CRM sync patching that id, or events
    naming it, must not give it a name and a story again."""
    from app.privacy.erase import erase

    lead_id = upsert_lead("ann@example.com", {"first_name": "Ann"}).lead.id
    db.session.commit()
    erase("ann@example.com", actor="test", reason="asked by email")
    body = _problem(api.patch(f"/api/v1/leads/{lead_id}",
                              {"first_name": "Ann", "attributes": {"city": "Oslo"}}), 410)
    assert "erased" in body["detail"]
    events = [{"id": "e1", "type": "visit", "lead_id": lead_id, "data": {"name": "Ann"}}]
    body = _problem(api.post("/api/v1/events", {"events": events}), 422)
    assert body["errors"][0]["field"] == "events.0.lead_id" and "erased" in body["detail"]
    tombstone = api.get(f"/api/v1/leads/{lead_id}").get_json()
    assert (tombstone["first_name"], tombstone["attributes"]) == ("", {})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)
                             .where(Event.lead_id == lead_id, Event.type == "custom.visit")) == 0


def test_nul_characters_and_ids_past_the_database_range_are_refused_cleanly(api: ApiClient):
    body = _problem(api.post("/api/v1/leads", {"email": "a@example.com",
                                               "company": "Acme\u0000"}), 422)
    assert body["errors"][0]["field"] == "company"
    _problem(api.get(f"/api/v1/leads/{2**31}"), 404)
    _problem(api.get("/api/v1/leads?q=a%00b"), 422)


def test_list_takes_the_leads_lists_filters_and_sorts(api: ApiClient):
    import base64
    import json
    from datetime import timedelta

    from app.db import utcnow
    from tests.helpers import make_user

    rep = make_user("rep@example.com", "sales")
    leads = [upsert_lead(f"f{n}@example.com", {"last_name": f"Name{n}"}).lead for n in range(6)]
    for n, lead in enumerate(leads):
        lead.fit_score = 10 * n
    leads[1].stage, leads[2].stage, leads[3].stage = "mql", "sql", "customer"
    leads[4].owner_id = rep.id
    leads[5].unsubscribed_at = utcnow()
    db.session.commit()
    db.session.execute(sa.update(Lead).where(Lead.id != leads[0].id)
                       .values(updated_at=utcnow() - timedelta(days=3)))
    db.session.commit()

    def emails(query: str) -> list[str]:
        response = api.get("/api/v1/leads?" + query)
        assert response.status_code == 200, response.get_json()
        return [d["email"] for d in response.get_json()["data"]]

    assert emails("stage=mql&stage=sql") == ["f1@example.com", "f2@example.com"]
    assert emails("owner=rep@example.com") == ["f4@example.com"]
    assert emails("owner=nobody@example.com") == []
    assert emails("suppressed=yes") == ["f5@example.com"]
    assert emails("grade=A") == ["f3@example.com", "f4@example.com", "f5@example.com"]
    since = (utcnow() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert emails(f"updated_since={since}") == ["f0@example.com"]
    assert emails("q=name4") == ["f4@example.com"]
    # Sorted by fit, highest first, a page at a time.
    first = api.get("/api/v1/leads?sort=fit&dir=desc&limit=4").get_json()
    assert [d["fit_score"] for d in first["data"]] == [50, 40, 30, 20]
    rest = api.get(f"/api/v1/leads?sort=fit&dir=desc&limit=4&cursor={first['next_cursor']}")
    assert [d["fit_score"] for d in rest.get_json()["data"]] == [10, 0]
    # A cursor of another sort, or a forged one, is refused as bad input (never a 500).
    body = _problem(api.get(f"/api/v1/leads?cursor={first['next_cursor']}"), 422)
    assert body["errors"][0]["field"] == "cursor"
    forged = base64.urlsafe_b64encode(json.dumps(["x", 1]).encode()).decode().rstrip("=")
    _problem(api.get(f"/api/v1/leads?sort=fit&cursor={forged}"), 422)
    naive = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", 1]).encode()).decode()
    _problem(api.get(f"/api/v1/leads?cursor={naive.rstrip('=')}"), 422)
    body = _problem(api.get("/api/v1/leads?sort=colour"), 422)
    assert body["errors"][0]["field"] == "sort"


def test_an_outcome_sent_again_keeps_one_deal(api: ApiClient):
    """A client that timed out sends the won deal again (no CRM id): the lead's deals, and so
    the revenue the cost report shows, must have it once."""
    lead = upsert_lead("ann@example.com").lead
    db.session.commit()
    assert api.post(f"/api/v1/leads/{lead.id}/stage",
                    {"stage": "sql", "reason": "Call booked"}).status_code == 200
    won = {"stage": "customer", "reason": "Signed", "amount": "1200.50", "currency": "EUR"}
    first = api.post(f"/api/v1/leads/{lead.id}/stage", won)
    again = api.post(f"/api/v1/leads/{lead.id}/stage", won)
    assert first.status_code == again.status_code == 200, again.get_json()
    assert db.session.scalars(sa.select(Outcome.amount)).all() == [Decimal("1200.50")]

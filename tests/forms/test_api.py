"""The JSON API embedded forms talk to, as a script on another site meets it."""

import time

import pytest
import sqlalchemy as sa
import time_machine

from app.db import db
from app.leads.models import Event, Lead
from forms.models import Intake, Submission
from tests.forms.support import count, leads, submissions
from tests.helpers import database_refusing, statements_sent

SITE = "https://www.acme.example"


@pytest.fixture
def embedded(make_form):
    return make_form(fields=[("first_name", "First name", "text", True),
                             ("size", "Company size", "select", False, ["1-10", "11-50"])],
                     allowed_origins=[SITE], consent_enabled=True,
                     consent_text="Email me the guide.", consent_version="2026-11")


def definition(client, form, origin=SITE):
    response = client.get(f"/api/forms/{form.key}", headers={"Origin": origin})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_definition_lists_fields_consent_and_a_token_for_an_allowed_origin(client, embedded):
    response = client.get(f"/api/forms/{embedded.key}", headers={"Origin": SITE})
    body = response.get_json()
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert "Origin" in response.headers["Vary"]
    assert [(f["name"], f["label"], f["required"]) for f in body["fields"]] == [
        ("email", "Email", True), ("first_name", "First name", True),
        ("size", "Company size", False)]
    assert [c["value"] for c in body["fields"][2]["choices"]] == ["", "1-10", "11-50"]
    assert body["consent"] == {"text": "Email me the guide.", "version": "2026-11",
                               "required": True, "name": "consent"}
    assert body["token"] and body["action"] == f"/api/forms/{embedded.key}/submissions"


def test_preflight_is_answered_for_an_allowed_origin_only(client, embedded):
    ok = client.options(f"/api/forms/{embedded.key}/submissions",
                        headers={"Origin": SITE, "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "content-type"})
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in ok.headers["Access-Control-Allow-Headers"]
    refused = client.options(f"/api/forms/{embedded.key}/submissions",
                             headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_another_origin_is_refused_and_never_gets_a_wildcard(client, embedded):
    response = client.post(f"/api/forms/{embedded.key}/submissions",
                           json={"email": "ann@example.com"},
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert count(Submission) == 0


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_our_own_origin_with_a_cross_site_fetch_is_refused(client, embedded, site):
    """A browser on another site says so in Sec-Fetch-Site; an Origin naming our own site
    with it is not what a browser sends, and only an allow-listed origin may post from afar."""
    token = definition(client, embedded)["token"]
    payload = {"email": "ann@example.com", "first_name": "Ann", "consent": True, "token": token}
    refused = client.post(f"/api/forms/{embedded.key}/submissions", json=payload,
                          headers={"Origin": "http://kindling.test", "Sec-Fetch-Site": site})
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "This site may not use this form."
    assert count(Submission) == 0
    allowed = client.post(f"/api/forms/{embedded.key}/submissions", json=payload,
                          headers={"Origin": SITE, "Sec-Fetch-Site": site})
    assert allowed.status_code == 202
    assert count(Lead) == 1


def test_unknown_form_is_404(client):
    assert client.get("/api/forms/nope").status_code == 404
    response = client.post("/api/forms/nope/submissions", json={"email": "ann@example.com"})
    assert response.status_code == 404 and "error" in response.get_json()


def test_a_json_submission_makes_a_lead(client, embedded):
    token = definition(client, embedded)["token"]
    response = client.post(f"/api/forms/{embedded.key}/submissions", headers={"Origin": SITE},
                           json={"email": "Ann@Example.com", "first_name": "Ann",
                                 "size": "11-50", "consent": True, "token": token,
                                 "utm_source": "partner", "landing_url": f"{SITE}/guide"})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body == {"id": body["id"], "status": "accepted", "message": "Thank you!"}
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    (lead,) = leads()
    (row,) = db.session.scalars(sa.select(Intake)).all()
    assert row.id == body["id"] and row.status == "done"  # the intake id the API answered
    assert (lead.email, lead.first_name, lead.attributes) == ("ann@example.com", "Ann",
                                                              {"size": "11-50"})
    (submission,) = submissions()
    assert submission.channel == "embed" and submission.consent_version == "2026-11"
    assert submission.utm == {"utm_source": "partner"}
    assert submission.landing_url == f"{SITE}/guide"


def test_a_form_encoded_submission_without_origin_works_too(client, embedded):
    token = definition(client, embedded)["token"]
    response = client.post(f"/api/forms/{embedded.key}/submissions",
                           data={"email": "ann@example.com", "first_name": "Ann",
                                 "consent": "y", "token": token})
    assert response.status_code == 202
    assert "Access-Control-Allow-Origin" not in response.headers
    assert count(Lead) == 1


@pytest.mark.parametrize("bad", ["a@", "a@b", "ann smith@example.com", "x" * 290 + "@example.com"])
def test_invalid_values_answer_422_naming_the_fields(client, embedded, bad):
    token = definition(client, embedded)["token"]
    response = client.post(f"/api/forms/{embedded.key}/submissions", headers={"Origin": SITE},
                           json={"email": bad, "size": "999", "token": token})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors) == {"email", "first_name", "size", "consent"}
    assert all(isinstance(m, list) and m for m in errors.values())
    assert response.headers["Access-Control-Allow-Origin"] == SITE  # the script can read it
    assert count(Lead) == 0 and count(Submission) == 0


@pytest.mark.parametrize("token", ["", "forged", "other-form"])
def test_a_missing_forged_or_foreign_token_is_quarantined_like_a_success(
        client, embedded, make_form, token):
    if token == "other-form":
        token = definition(client, make_form("Other", allowed_origins=[SITE]))["token"]
    response = client.post(f"/api/forms/{embedded.key}/submissions", headers={"Origin": SITE},
                           json={"email": "ann@example.com", "first_name": "Ann",
                                 "consent": True, "token": token})
    assert response.status_code == 202
    assert response.get_json()["status"] == "accepted"
    (submission,) = submissions()
    assert submission.status == "quarantined" and "token" in submission.quarantine_reason
    assert "token" not in submission.raw  # the token itself is not kept
    assert count(Lead) == 0 and count(Event) == 0


def test_the_token_doubles_as_the_minimum_time_check(client, embedded):
    embedded.min_submit_seconds = 3
    from app.db import db

    db.session.commit()
    body = {"email": "ann@example.com", "first_name": "Ann", "consent": True,
            "token": definition(client, embedded)["token"]}
    url = f"/api/forms/{embedded.key}/submissions"
    client.post(url, json=body)
    with time_machine.travel(time.time() + 10, tick=False):
        client.post(url, json={**body, "first_name": "Annie"})
    assert [s.status for s in submissions()] == ["quarantined", "accepted"]


def test_double_opt_in_answers_pending_confirmation(client, embedded):
    embedded.double_opt_in = True
    from app.db import db

    db.session.commit()
    token = definition(client, embedded)["token"]
    response = client.post(f"/api/forms/{embedded.key}/submissions",
                           json={"email": "ann@example.com", "first_name": "Ann",
                                 "consent": True, "token": token})
    assert response.status_code == 202
    assert response.get_json()["status"] == "pending_confirmation"
    assert "confirm" in response.get_json()["message"]


def test_an_oversize_body_is_refused(client, embedded):
    response = client.post(f"/api/forms/{embedded.key}/submissions",
                           json={"email": "ann@example.com", "first_name": "x" * 100_000})
    assert response.status_code == 413
    assert count(Submission) == 0


def test_submissions_are_rate_limited_per_address(app_config, make_app):
    app_config.update(RATELIMIT_ENABLED=True, FORM_RATE_LIMIT="3 per minute")
    limited = make_app(app_config)
    with limited.app_context():
        from app.db import db
        from forms.admin import create_form

        form = create_form("Limited")
        form.min_submit_seconds = 0
        db.session.commit()
        key = form.key
    client = limited.test_client()
    statuses = [client.post(f"/api/forms/{key}/submissions",
                            json={"email": f"p{i}@example.com"}).status_code for i in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    response = client.post(f"/api/forms/{key}/submissions", json={"email": "x@example.com"})
    assert "error" in response.get_json()


def test_a_submit_while_the_database_refuses_is_kept_not_refused(app, client, embedded):
    """The embed API validates against this process's last copy of the form and keeps the
    submit in the spill journal (202); the next processor run makes the lead."""
    from flask.testing import FlaskClient

    from forms import spill
    from forms.jobs import process_intake

    token = definition(client, embedded)["token"]
    posted = {"first_name": "Ann", "consent": True, "token": token}
    url = f"/api/forms/{embedded.key}/submissions"
    assert client.post(url, json={**posted, "email": "ann@example.com"}).status_code == 202

    with database_refusing():
        kept = FlaskClient(app).post(url, json={**posted, "email": "bob@example.com"})
        assert kept.status_code == 202, kept.get_data(as_text=True)
        assert kept.get_json()["status"] == "accepted" and spill.waiting()
        other = FlaskClient(app).post("/api/forms/nope/submissions",
                                      json={**posted, "email": "cy@example.com"})
        assert other.status_code == 503  # no copy of an unknown form: the database decides
    assert process_intake() == 1 and not spill.waiting()
    assert sorted(lead.email for lead in leads()) == ["ann@example.com", "bob@example.com"]


def test_the_embedded_form_still_loads_and_reads_its_errors_while_the_database_refuses(
        app, client, embedded):
    """An outage must not take the embedded form off the partner's page: its definition comes
    from this process's copy of the form (as the submit does), and an error answer (here a
    double-click's oversize body) still carries the CORS header the script needs to read
    and show it; before, both were the app's 503 without it."""
    from flask.testing import FlaskClient

    fresh = definition(client, embedded)
    with database_refusing():
        visitor = FlaskClient(app)
        loaded = visitor.get(f"/api/forms/{embedded.key}", headers={"Origin": SITE})
        assert loaded.status_code == 200, loaded.get_data(as_text=True)
        assert loaded.headers["Access-Control-Allow-Origin"] == SITE
        assert loaded.get_json()["fields"] == fresh["fields"]
        too_big = visitor.post(f"/api/forms/{embedded.key}/submissions",
                               headers={"Origin": SITE},
                               json={"email": "ann@example.com", "first_name": "x" * 100_000})
        assert too_big.status_code == 413
        assert too_big.headers["Access-Control-Allow-Origin"] == SITE
        assert too_big.get_json()["error"] == "What you sent is larger than we accept."
        unknown = visitor.get("/api/forms/nope", headers={"Origin": SITE})
        assert unknown.status_code == 503  # no copy of an unknown form: the database decides


def test_a_submit_reads_only_the_forms_version_and_an_edit_shows_at_once(app, client, embedded):
    """The form's whole definition is read once per process; each submit then reads its
    version (one small statement) besides the intake INSERT. A new version is read again."""
    from flask.testing import FlaskClient

    from forms.models import FormField

    token = definition(client, embedded)["token"]
    posted = {"first_name": "Ann", "consent": True, "token": token}
    url = f"/api/forms/{embedded.key}/submissions"
    visitor = FlaskClient(app)  # no worker behind it: only the request's statements
    assert visitor.post(url, json={**posted, "email": "ann@example.com"}).status_code == 202
    with statements_sent(words=4) as statements:
        assert visitor.post(url, json={**posted, "email": "bob@example.com"}).status_code == 202
    assert [sql for sql, _ in statements] == ["SELECT forms.version FROM forms",
                                              "INSERT INTO intake (id,"]

    embedded.fields.append(FormField(name="job_title", label="Job title", type="text",
                                     required=True, position=9))
    embedded.touch()
    db.session.commit()
    refused = visitor.post(url, json={**posted, "email": "cy@example.com"})
    assert refused.status_code == 422 and "job_title" in refused.get_json()["errors"]


def test_a_form_key_with_a_nul_character_is_not_found_not_a_server_error(app, client, embedded):
    """PostgreSQL refuses a NUL in a query's text: the definition, the submit and its
    preflight answered 500 (and so did the 404's own error handler, which looks the key up).
    Such an address matches no route (app.url_text): a problem answer, no look-up."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    key = embedded.key + "%00"
    assert client.get(f"/api/forms/{key}", headers={"Origin": SITE}).status_code == 404
    for method in ("POST", "OPTIONS"):
        response = client.open(f"/api/forms/{key}/submissions", method=method,
                               headers={"Origin": SITE}, json={"email": "ann@example.com"})
        assert response.status_code == 404
        assert response.get_json()["detail"] == "There is nothing at this address."


def test_an_allow_list_entry_with_the_default_port_matches_the_browsers_origin(client,
                                                                               make_form):
    """Browsers leave :443 (https) and :80 (http) out of `Origin`: a marketer who wrote the
    port in the allow-list still gets the partner site's requests through."""
    form = make_form(allowed_origins=[SITE + ":443", "http://partner.example:80/"])
    for origin in (SITE, "http://partner.example"):
        response = client.get(f"/api/forms/{form.key}", headers={"Origin": origin})
        assert response.status_code == 200, (origin, response.status_code)
        assert response.headers["Access-Control-Allow-Origin"] == origin
    refused = client.get(f"/api/forms/{form.key}", headers={"Origin": SITE + ":8443"})
    assert refused.status_code == 403

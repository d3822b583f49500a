"""The hosted path, as a visitor on one of our pages meets it."""

import pytest
import time_machine

from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.leads.service import record_event
from forms.models import Submission
from tests.forms.support import count, events, leads, submissions

LONG = "x" * 290 + "@example.com"


@pytest.mark.parametrize("bad", ["a@", "a@b", "ann smith@example.com", LONG])
def test_invalid_email_keeps_every_typed_value_and_ties_the_message_to_the_field(
        page, make_form, bad):
    form = make_form(fields=[("first_name", "First name", "text", True),
                             ("company", "Company", "text", False)],
                     consent_enabled=True, consent_text="Email me", consent_version="v1")
    response = page.post(form, {"email": bad, "first_name": "Ann", "company": "Acme",
                                "consent": "y"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'value="Ann"' in html and 'value="Acme"' in html
    assert '<input checked id="consent"' in html
    assert 'aria-describedby="email-error"' in html and 'aria-invalid="true"' in html
    assert '<p class="error" id="email-error">' in html
    assert count(Lead) == 0 and count(Submission) == 0


@pytest.mark.parametrize("typed,identity", [("用户@例子.广告", "用户@例子.广告"),
                                            ("José@Bücher.de", "josé@bücher.de")])
def test_international_addresses_are_accepted_and_normalised(page, make_form, typed, identity):
    form = make_form()
    assert page.post(form, {"email": typed}).status_code == 201
    (lead,) = leads()
    assert lead.email == identity
    assert submissions()[0].email == identity


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://shop.kindling.test"},
    # No browser sends these pairs honestly: a page on another site says so in Sec-Fetch-Site,
    # whatever Origin came with it (our own: the request's host, BASE_URL).
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://kindling.test"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://kindling.test"},
])
def test_a_cross_site_post_is_refused_with_a_clear_page_and_makes_no_lead(
        page, make_form, headers):
    form = make_form()
    refused = page.post(form, {"email": "ann@example.com"}, headers=headers)
    assert refused.status_code == 403
    assert "can only be sent from its own page" in refused.get_data(as_text=True)
    assert count(Lead) == 0 and count(Submission) == 0


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Origin": "http://localhost"},  # an older browser: Origin only
    {"Origin": "http://kindling.test"},  # BASE_URL, behind a proxy
    {"Origin": "https://www.acme.example", "Sec-Fetch-Site": "cross-site"},  # allow-listed
    {},  # not a browser: the spam checks and the rate limit apply
])
def test_a_same_origin_or_allowed_post_without_any_cookie_is_accepted(
        app, page, make_form, headers):
    from tests.forms.support import HostedPage

    form = make_form(allowed_origins=["https://www.acme.example"])
    accepted = HostedPage(app.test_client()).post(form, {"email": "ann@example.com"}, headers=headers)
    assert accepted.status_code == 201
    assert count(Lead) == 1


def test_the_form_page_carries_no_token_and_no_session(page, make_form):
    form = make_form()
    response = page.get(form)
    html = response.get_data(as_text=True)
    assert "csrf_token" not in html
    assert "session=" not in response.headers.get("Set-Cookie", "")


def test_an_oversize_body_is_refused(page, make_form):
    form = make_form()  # MAX_CONTENT_LENGTH (2 MB) caps every urlencoded body
    response = page.post(form, {"email": "ann@example.com", "first_name": "x" * 2_200_000})
    assert response.status_code == 413
    assert count(Lead) == 0


def test_a_double_click_makes_one_lead_and_one_submission(page, make_form):
    form = make_form()
    first = page.post(form, {"email": "ann@example.com", "first_name": "Ann"})
    second = page.post(form, {"email": "Ann@Example.com ", "first_name": "Ann"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert count(Lead) == 1 and count(Submission) == 1
    assert len(events("form_submitted")) == 1


@pytest.mark.parametrize("data,minimum", [
    ({"website": "http://spam.example.com"}, 0),  # honeypot filled
    ({}, 2),  # submitted under two seconds after the page rendered
])
def test_bots_are_quarantined_without_a_lead_or_an_event(page, make_form, data, minimum):
    form = make_form(min_submit_seconds=minimum)
    response = page.post(form, {"email": "bot@example.com", **data})
    assert response.status_code == 201  # answered like a success
    (submission,) = submissions()
    assert submission.status == "quarantined" and submission.lead_id is None
    assert count(Lead) == 0 and count(Event) == 0


def test_a_person_who_takes_their_time_is_accepted(page, make_form):
    form = make_form(min_submit_seconds=2)
    html = page.get(form).get_data(as_text=True)
    from tests.forms.support import hidden_value

    data = {"email": "ann@example.com", "ts": hidden_value(html, "ts")}
    with time_machine.travel(utcnow().timestamp() + 5, tick=False):
        response = page.client.post(f"/test-page/{form.key}", data=data)
    assert response.status_code == 201
    assert submissions()[0].status == "accepted" and count(Lead) == 1


def test_earlier_anonymous_visits_join_the_lead_and_two_emails_stay_two_leads(page, make_form):
    form = make_form()
    browser = "b" * 24
    record_event(None, "page_viewed", url="/pricing", visitor_id=browser)
    db.session.commit()
    page.client.set_cookie("kv", browser)

    page.post(form, {"email": "ann@example.com"})
    page.post(form, {"email": "bob@example.com"})

    ann, bob = leads()
    (viewed,) = events("page_viewed")
    assert viewed.lead_id == ann.id  # Ann's earlier visit joined her timeline
    assert [e.lead_id for e in events("form_submitted")] == [ann.id, bob.id]
    assert {s.visitor_id for s in submissions()} == {browser}


def test_a_new_browser_gets_the_visitor_cookie(page, make_form):
    form = make_form()
    response = page.post(form, {"email": "ann@example.com"})
    assert "kv=" in response.headers.get("Set-Cookie", "")
    assert submissions()[0].visitor_id


def test_consent_text_and_version_are_stored_with_the_submission(page, make_form):
    form = make_form(consent_enabled=True, consent_text="Yes, email me news.",
                     consent_version="2026-11")
    refused = page.post(form, {"email": "ann@example.com"})
    assert refused.status_code == 422
    assert "Please give your consent" in refused.get_data(as_text=True)
    page.post(form, {"email": "ann@example.com", "consent": "y"})
    (submission,) = submissions()
    assert submission.consent_given is True
    assert (submission.consent_text, submission.consent_version) == ("Yes, email me news.",
                                                                    "2026-11")
    form.consent_text = "New wording"
    form.consent_version = "2027-01"
    form.touch()
    db.session.commit()
    assert submissions()[0].consent_text == "Yes, email me news."  # what they agreed to, kept


def test_a_required_consent_box_is_marked_required_like_the_other_fields(page, make_form):
    required = page.get(make_form(consent_enabled=True, consent_required=True,
                                  consent_text="Yes, email me news.")).get_data(as_text=True)
    box = required[required.index('name="consent"') - 300:required.index("Yes, email me news.")
                   + 80]
    assert "required" in box and '<span class="req" aria-hidden="true">*</span>' in box
    optional = page.get(make_form(consent_enabled=True, consent_required=False,
                                  consent_text="Yes, email me news.")).get_data(as_text=True)
    tail = optional[optional.index("Yes, email me news."):]
    assert '<span class="req"' not in tail[:200]


def test_tracking_values_filled_by_the_page_script_are_captured(page, make_form):
    """The page's script fills the hidden fields from the browser: the referrer, the landing
    address, the query string's values and the time zone."""
    form = make_form(fields=[("plan", "Plan", "hidden", False)])
    query = "?utm_source=newsletter&utm_campaign=spring&gclid=abc123&plan=pro"
    landing = f"http://localhost/test-page/{form.key}{query}"
    response = page.post(form, {"email": "ann@example.com", "utm_source": "newsletter",
                                "utm_campaign": "spring", "gclid": "abc123", "plan": "pro",
                                "referrer": "https://search.example.com/?q=x",
                                "landing_url": landing, "tz": "America/Los_Angeles"})
    assert response.status_code == 201
    (submission,) = submissions()
    assert submission.utm == {"utm_source": "newsletter", "utm_campaign": "spring",
                              "gclid": "abc123"}
    assert submission.referrer == "https://search.example.com/?q=x"
    assert submission.landing_url == landing
    assert submission.campaign_id == 7
    assert leads()[0].attributes == {"plan": "pro", "timezone": "America/Los_Angeles"}


def test_without_javascript_the_landing_address_and_its_query_come_from_the_referer(
        page, make_form):
    form = make_form(fields=[("plan", "Plan", "hidden", False)])
    landing = f"http://localhost/test-page/{form.key}?utm_source=newsletter&plan=" + "p" * 300
    assert page.post(form, {"email": "ann@example.com"},
                     headers={"Referer": landing, "Origin": "http://localhost"}
                     ).status_code == 201
    (submission,) = submissions()
    assert submission.utm == {"utm_source": "newsletter"}
    assert submission.landing_url == landing
    assert leads()[0].attributes == {"plan": "p" * 200}  # cut to the field's length
    # Another site's address is never taken for ours.
    page.post(form, {"email": "bob@example.com"},
              headers={"Referer": "https://evil.example/?utm_source=x"})
    assert submissions()[1].utm == {} and submissions()[1].landing_url == ""


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "x" * 80, ""])
def test_a_time_zone_that_is_not_one_is_dropped_without_an_error(page, make_form, zone):
    form = make_form()
    assert page.post(form, {"email": "ann@example.com", "tz": zone}).status_code == 201
    assert "timezone" not in (leads()[0].attributes or {})


@pytest.mark.parametrize("known", [False, True], ids=["new lead", "known lead"])
def test_a_double_click_racing_itself_makes_one_intake_row_one_lead_and_one_submission(
        app, page, make_form, known):
    """The two posts of a double click can be in flight together: the intake row's unique
    duplicate key keeps one, and both are answered with the thank-you."""
    import threading

    from flask.testing import FlaskClient

    from app.leads.service import upsert_lead
    from forms import processor
    from forms.models import Intake
    from tests.forms.support import hidden_value

    form = make_form()
    if known:
        upsert_lead("ann@example.com", {"company": "Acme"})
        db.session.commit()
    html = page.get(form).get_data(as_text=True)
    data = {"ts": hidden_value(html, "ts"), "email": "ann@example.com", "first_name": "Ann"}
    barrier = threading.Barrier(2, timeout=10)
    statuses: list[int] = []

    def click():
        client = FlaskClient(app)  # no worker run after it: the two posts only
        barrier.wait()
        statuses.append(client.post(f"/test-page/{form.key}", data=data,
                                    headers={"Sec-Fetch-Site": "same-origin"}).status_code)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [201, 201]  # both answered with the thank-you, neither with an error
    assert count(Intake) == 1
    processor.drain()
    assert count(Lead) == 1 and count(Submission) == 1
    assert len(events("form_submitted")) == 1
    (lead,) = leads()
    assert (lead.first_name, lead.company) == ("Ann", "Acme" if known else "")


def test_a_returning_lead_is_updated_never_erased_and_the_changes_are_on_the_event(
        page, make_form):
    form = make_form(fields=[("first_name", "First name", "text", False),
                             ("company", "Company", "text", False)])
    browser = {"REMOTE_ADDR": "203.0.113.9"}
    page.post(form, {"email": "ann@example.com", "first_name": "Ann", "company": "Acme"},
              environ_base=browser)
    page.post(form, {"email": "ANN@example.com", "first_name": "  ", "company": " Acme Ltd "},
              headers={"User-Agent": "Mozilla/5.0 (X11; Linux) Firefox/140.0"},
              environ_base=browser)
    (lead,) = leads()
    assert (lead.first_name, lead.company) == ("Ann", "Acme Ltd")  # the blank erased nothing
    first, second = events("form_submitted")
    assert first.data["new_lead"] is True and second.data["new_lead"] is False
    assert second.data["changes"] == {"company": ["Acme", "Acme Ltd"]}
    latest = submissions()[1]
    assert latest.values == {"company": "Acme Ltd"}  # cleaned: trimmed, blanks left out
    assert (latest.ip, latest.user_agent) == ("203.0.113.9",
                                              "Mozilla/5.0 (X11; Linux) Firefox/140.0")


def test_an_allow_list_entry_with_the_default_port_accepts_the_browsers_post(app, page,
                                                                          make_form):
    from tests.forms.support import HostedPage

    form = make_form(allowed_origins=["https://www.acme.example:443"])
    browser = HostedPage(app.test_client())
    accepted = browser.post(form, {"email": "ann@example.com"}, headers={
        "Origin": "https://www.acme.example", "Sec-Fetch-Site": "cross-site"})
    assert accepted.status_code == 201
    refused = browser.post(form, {"email": "bob@example.com"}, headers={
        "Origin": "https://www.acme.example:8443", "Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403


@pytest.fixture
def https_site(app_config, request):
    """The site is https://kindling.test behind a TLS proxy that forwards plain http, and
    TRUSTED_PROXIES is unset: to the app every request looks like http://kindling.test."""
    app_config["BASE_URL"] = "https://kindling.test"
    return request.getfixturevalue("page"), request.getfixturevalue("make_form")


@pytest.mark.parametrize("origin,status", [
    ("http://kindling.test", 403),  # a page on the plain-http site (anyone on the network)
    ("https://kindling.test", 201),
    ("https://KINDLING.test:443", 201),
])
def test_behind_an_https_proxy_only_the_https_site_is_our_origin(https_site, origin, status):
    """An older browser (Origin, no Sec-Fetch-Site): with an https BASE_URL our own origin is
    exactly that one, not the http address the proxy forwards to."""
    page, make_form = https_site
    form = make_form()
    response = page.post(form, {"email": "ann@example.com"}, base_url="http://kindling.test",
                         headers={"Origin": origin})
    assert response.status_code == status
    assert count(Lead) == (1 if status == 201 else 0)

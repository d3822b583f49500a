"""The marketer's scoring screens, the lead page panel and the JSON API."""

import re
from typing import Any

import sqlalchemy as sa
import time_machine

from app.db import db
from nurture.scoring import jobs, service
from nurture.scoring.admin_forms import rules_form_data, thresholds_form_data
from nurture.scoring.models import RuleSet
from nurture.scoring.rules import default_rules
from tests.helpers import csrf_from
from tests.nurture.scoring.support import DIRECTOR, NOW, add_events, hot_activity, make_lead


def flatten(data: dict[str, Any]) -> dict[str, str]:
    """Form data as the browser posts it: fit-0-field=…"""
    flat: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, list):
            for index, row in enumerate(value):
                for name, item in row.items():
                    if item is not None and name != "remove":
                        flat[f"{key}-{index}-{name}"] = str(item)
        elif value is not None:
            flat[key] = str(value)
    return flat


def post_rules(client, change=None, path="/admin/scoring/", data_of=rules_form_data, **extra):
    data = data_of(service.active_rules().rules)
    if change:
        change(data)
    page = client.get(path)
    return client.post(path, data={**flatten(data), "csrf_token": csrf_from(page.get_data(
        as_text=True)), **extra})


def versions():
    db.session.expire_all()
    return db.session.scalars(sa.select(RuleSet).order_by(RuleSet.version)).all()


def test_sales_users_read_the_rules_and_thresholds_but_cannot_change_them(app, client, auth):
    """Issue 12: both teams argue from the same numbers, so sales may open the rules, the
    thresholds, the history and the calibration page, read-only."""
    auth.login_as("sales")
    for path in ("/admin/scoring/", "/admin/scoring/thresholds", "/admin/scoring/versions",
                 "/admin/scoring/calibration"):
        page = client.get(path)
        assert page.status_code == 200, path
    for path in ("/admin/scoring/", "/admin/scoring/thresholds"):
        html = client.get(path).get_data(as_text=True)
        assert "Read-only." in html and '<fieldset class="plain" disabled>' in html
    token = auth.csrf("/admin/")  # a valid token: only the role check can refuse it
    assert client.post("/admin/scoring/", data={"csrf_token": token}).status_code == 403
    assert client.post("/admin/scoring/thresholds", data={"csrf_token": token}).status_code == 403
    assert versions() == []


def test_marketer_sees_the_editor_with_the_defaults(app, client, auth):
    auth.login_as("marketer")
    page = client.get("/admin/scoring/").get_data(as_text=True)
    assert "built-in defaults" in page and "job_title" in page
    assert 'href="/admin/scoring/"' in client.get("/admin/").get_data(as_text=True)


def test_an_invalid_pattern_is_named_and_nothing_is_saved(app, client, auth):
    auth.login_as("marketer")

    def break_second_rule(data):
        data["fit"][1].update(field="job_title", op="matches", value="(VP|Director")

    response = post_rules(client, break_second_rule)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was saved." in page
    assert "Fit rule 2: “(VP|Director” is not a valid pattern" in page
    assert versions() == []


def test_an_unknown_field_is_named_and_nothing_is_saved(app, client, auth):
    auth.login_as("marketer")
    response = post_rules(client, lambda d: d["fit"].append(
        {"field": "shoe_size", "op": "equals", "value": "<b>9</b>", "points": "3"}))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Fit rule 5: there is no lead field “shoe_size”" in page
    assert "<b>9</b>" not in page and "&lt;b&gt;9&lt;/b&gt;" in page
    assert versions() == []


def test_bad_engagement_pattern_names_its_rule(app, client, auth):
    auth.login_as("marketer")
    response = post_rules(client, lambda d: d["engagement"][5].update(url_pattern="/pricing["))
    assert "Engagement rule 6: “/pricing[” is not a valid pattern" in response.get_data(
        as_text=True)
    assert versions() == []


def test_saving_creates_a_new_version_and_keeps_the_old_ones(app, client, auth):
    auth.login_as("marketer")
    response = post_rules(client, lambda d: d["engagement"][2].update(points="8"),
                          note="Clicks matter more")
    assert response.status_code == 302
    response = post_rules(client, lambda d: d["fit"].pop(), note="Company no longer counts")
    assert response.status_code == 302
    v1, v2 = versions()
    assert (v1.version, v1.active, v2.version, v2.active) == (1, False, 2, True)
    assert v1.definition["engagement"][2]["points"] == 8
    assert len(v2.definition["fit"]) == 3 and v2.created_by.email == "marketer@example.com"
    history = client.get("/admin/scoring/versions").get_data(as_text=True)
    assert "Clicks matter more" in history and "Company no longer counts" in history
    old = client.get("/admin/scoring/versions/1").get_data(as_text=True)
    assert "Read-only" in old and "email clicked: +8" in old.replace("email_clicked", "email clicked")
    # Restoring makes a copy as a new version: history is never rewritten.
    response = client.post("/admin/scoring/versions/1", data={"csrf_token": csrf_from(old)})
    assert response.status_code == 302
    assert [(v.version, v.active) for v in versions()] == [(1, False), (2, False), (3, True)]
    assert versions()[2].definition == v1.definition


def test_what_if_preview_counts_leads_before_saving(app, client, auth):
    with time_machine.travel(NOW, tick=False):
        hot = make_lead(**DIRECTOR)
        warm = make_lead("lee@bright.example.com", company="Bright", country="US")  # fit C
        cold = make_lead("kim@gmail.com")  # fit F
        add_events(hot, *hot_activity())
        add_events(warm, ("form_submitted", 1), ("email_clicked", 1))  # 20
        add_events(cold, *hot_activity())
        for lead in (hot, warm, cold):
            jobs.score_lead(lead.id)
        db.session.commit()
        auth.login_as("marketer")

        def lower(data):
            data["mql_engagement"] = "15"
            data["mql_grade"] = "F"

        response = post_rules(client, lower, path="/admin/scoring/thresholds",
                              data_of=thresholds_form_data, preview="Preview")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    # hot is already an MQL: warm and cold are the two leads scoring may still move.
    assert re.search(r"<strong>2 leads</strong> of 2 would be MQL", page)
    assert "(<strong>0</strong> under the active ones)" in page
    assert versions() == []


def test_thresholds_save_a_new_version(app, client, auth):
    auth.login_as("marketer")

    def change(data):
        data["mql_engagement"] = "60"
        data["instant"] = [{"event_type": "page_viewed", "url_pattern": "/pricing",
                            "min_grade": "A", "within_days": "14"}]

    response = post_rules(client, change, path="/admin/scoring/thresholds",
                          data_of=thresholds_form_data, save="Save")
    assert response.status_code == 302
    (v1,) = versions()
    assert v1.definition["mql_engagement"] == 60
    assert v1.definition["instant"][0]["within_days"] == 14
    assert v1.definition["fit"] == default_rules().to_dict()["fit"]


def test_lead_page_shows_the_breakdown_escaped(app, client, auth):
    lead = make_lead(job_title="<script>alert(1)</script> Director", company="Acme",
                     country="GB")
    add_events(lead, ("page_viewed", 1, {"url": "/pricing?<img src=x onerror=alert(2)>"}),
               ("email_opened", 1, {"is_bot": True}))
    auth.login_as("sales")
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Director" in page
    assert "Fit A" in page and "job title contains the word “VP”" in page
    assert r"\b(VP" not in page  # the rule in plain words, never its pattern
    assert "1 machine event (bots, privacy proxies) ignored." in page


def test_score_api_for_staff(app, client, auth):
    with time_machine.travel(NOW, tick=False):
        lead = make_lead(**DIRECTOR)
        add_events(lead, ("form_submitted", 30))
        assert client.get(f"/admin/api/leads/{lead.id}/score").status_code == 302  # sign in
        auth.login_as("sales")
        data = client.get(f"/admin/api/leads/{lead.id}/score").get_json()
    assert data["fit"]["grade"] == "A" and data["fit"]["points"] == 30
    (item,) = data["engagement"]["items"]
    assert item["event_type"] == "form_submitted" and item["decay"] == 0.5
    assert item["points"] == 7.5 and data["engagement"]["score"] == 7.5
    assert data["mql"]["qualifies"] is False
    assert client.get("/admin/api/leads/999/score").status_code == 404


def test_fit_rules_are_written_as_contains_equals_or_is_one_of(app, client, auth):
    auth.login_as("marketer")
    editor = client.get("/admin/scoring/").get_data(as_text=True)
    # A new row starts as "contains" (the first choice, none selected); the regular
    # expression is the last, advanced choice.
    blank = re.search(r'<select[^>]*name="fit-4-op"[^>]*>(.*?)</select>', editor, re.DOTALL).group(1)
    assert "selected" not in blank
    labels = re.findall(r"<option[^>]*>([^<]+)</option>", blank)
    assert labels[:3] == ["contains", "equals", "is one of"]
    assert labels[-1] == "matches a pattern (advanced)"

    def add_rules(data):
        data["fit"] += [{"field": "job_title", "op": "contains", "value": "founder, owner",
                         "points": "12"},
                        {"field": "attributes.industry", "op": "equals", "value": "SaaS",
                         "points": "4"},
                        {"field": "country", "op": "in", "value": "DE, AT, CH", "points": "3"}]

    assert post_rules(client, add_rules, note="Founders").status_code == 302
    lead = make_lead("kai@startup.example.com", job_title="Co-Founder & CEO", country="AT",
                     industry="saas")
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "job title contains “founder” or “owner”" in page
    assert "attributes.industry is “SaaS”" in page
    assert "country is one of DE, AT, CH" in page
    assert "19 fit points" in page  # 12 + 4 + 3
    # the editor shows each saved rule in the words sales will read
    assert "In words:</span> job title contains “founder” or “owner”" in client.get(
        "/admin/scoring/").get_data(as_text=True)


def test_stored_pattern_rules_keep_working_and_read_in_plain_words(app, client, auth):
    from nurture.scoring.rules import Rules

    service.save_version(Rules.from_dict({"fit": [
        {"field": "job_title", "op": "matches", "value": "^(CEO|CTO)$", "points": 20},
        {"field": "company", "op": "matches", "value": r"(?:GmbH|AG)$", "points": 5},
        {"field": "phone", "op": "matches", "value": r"^\+49\d{6,}", "points": 2},
    ]}), user_id=None)
    db.session.commit()
    lead = make_lead("ute@example.de", job_title="cto", company="Muster AG",
                     phone="+4930123456")
    auth.login_as("sales")
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "job title is one of CEO, CTO" in page
    assert "company ends with “GmbH” or “AG”" in page
    assert "phone matches a custom pattern" in page  # no words for it: still not the pattern
    for pattern in ("^(CEO|CTO)$", "(?:GmbH|AG)$", r"\d{6,}"):
        assert pattern not in page
    assert "27 fit points" in page  # each rule still scores as before


def test_scoring_rules_pick_the_form_campaign_and_email_by_name(app, client, auth):
    from app.db import utcnow
    from campaigns.models import Campaign
    from forms.models import Form
    from tests.nurture.factories import email_step, make_sequence

    demo = Form(name="Demo request")
    spring = Campaign(name="Spring launch", slug="spring")
    db.session.add_all([demo, spring])
    db.session.commit()
    guide = make_sequence(email_step(subject="Your guide"), email_step(subject="A quick call?"),
                          name="Onboarding").steps[0]
    auth.login_as("marketer")
    editor = client.get("/admin/scoring/").get_data(as_text=True)
    for header in ("Form id", "Campaign id", "Email id"):
        assert header not in editor
    row = re.search(r'<select id="engagement-0-form_id"[^>]*>(.*?)</select>', editor, re.DOTALL)
    assert row and f'<option value="{demo.id}">Demo request</option>' in row.group(1)
    emails = re.search(r'<select id="engagement-0-step_id"[^>]*>(.*?)</select>', editor, re.DOTALL)
    assert f'<option value="{guide.id}">Onboarding › 1. Your guide</option>' in emails.group(1)
    assert '<label for="engagement-0-campaign_id">Campaign' in editor

    def pick(data):
        data["engagement"] += [
            {"event_type": "email_clicked", "step_id": str(guide.id), "points": "9"},  # chosen
            {"event_type": "form_submitted", "form_id": "demo REQUEST",  # typed, exact name
             "campaign_id": f"Spring launch (#{spring.id})", "points": "25"}]  # a suggestion

    assert post_rules(client, pick, note="Picked").status_code == 302
    (saved,) = versions()
    clicks, demos = saved.definition["engagement"][-2:]
    assert clicks["step_id"] == str(guide.id)
    assert (demos["form_id"], demos["campaign_id"]) == (str(demo.id), str(spring.id))

    # Every send of that email counts, whoever it went to; the page names it, not its id.
    lead = make_lead()
    add_events(lead, ("email_clicked", 0, {"data": {"send_id": "41", "step_id": guide.id}}),
               ("email_clicked", 0, {"data": {"send_id": "42", "step_id": guide.id + 1}}),
               now=utcnow())
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "email_clicked · email “Onboarding › 1. Your guide”" in page
    assert f"email {guide.id}" not in page
    old = client.get("/admin/scoring/versions/1").get_data(as_text=True)
    assert "form “Demo request”" in old and "campaign “Spring launch”" in old

    def unknown(data):
        data["engagement"].append({"event_type": "form_submitted", "form_id": "Nope",
                                   "points": "5"})

    response = post_rules(client, unknown)
    assert response.status_code == 400
    assert "Engagement rule 9: No form matches “Nope”" in response.get_data(as_text=True)
    assert len(versions()) == 1


def test_sales_reads_the_rules_in_plain_words_with_what_they_pick_by_name(app, client, auth):
    """The read-only scoring pages sales opens say the rules as the marketer's editor does: each
    saved rule in words, the form and campaign a rule filters by named, no way to change them."""
    from campaigns.models import Campaign
    from forms.models import Form
    from nurture.scoring.rules import Rules

    auth.login_as("sales")
    defaults = client.get("/admin/scoring/thresholds").get_data(as_text=True)
    assert "No instant-MQL rule: leads become MQLs by the thresholds alone." in defaults
    demo = Form(name="Demo request")
    spring = Campaign(name="Spring launch", slug="spring")
    db.session.add_all([demo, spring])
    db.session.commit()
    definition = default_rules().to_dict()
    definition["fit"][0].update(field="job_title", op="matches", value="^(CEO|CTO)$")
    definition["engagement"].append({"event_type": "form_submitted", "form_id": str(demo.id),
                                     "points": 25})
    definition["instant"] = [{"event_type": "form_submitted", "campaign_id": str(spring.id),
                              "within_days": 7}]
    for saved in (Rules.from_dict(definition), default_rules(), Rules.from_dict(definition)):
        service.save_version(saved, user_id=None)  # v1 is old, v3 active
    db.session.commit()

    rules = client.get("/admin/scoring/").get_data(as_text=True)
    assert "Read-only." in rules and '<fieldset class="plain" disabled>' in rules
    assert "In words:</span> job title is one of CEO, CTO" in rules
    # the saved rules only: no empty rows to fill in, no button that cannot be pressed
    assert f'name="fit-{len(definition["fit"]) - 1}-field"' in rules
    assert f'name="fit-{len(definition["fit"])}-field"' not in rules
    assert "Save as a new version" not in rules
    form_picked = re.findall(r'<select id="engagement-\d+-form_id"[^>]*>(.*?)</select>', rules,
                             re.DOTALL)
    assert any(f'<option value="{demo.id}" selected>Demo request</option>' in options
               for options in form_picked)
    thresholds = client.get("/admin/scoring/thresholds").get_data(as_text=True)
    assert "Read-only." in thresholds and 'name="instant-1-event_type"' not in thresholds
    assert 'value="Preview"' not in thresholds and "Save as a new version" not in thresholds
    campaign = re.search(r'<select id="instant-0-campaign_id"[^>]*>(.*?)</select>', thresholds,
                         re.DOTALL)
    assert campaign and f'<option value="{spring.id}" selected>Spring launch</option>' in (
        campaign.group(1))
    old = client.get("/admin/scoring/versions/1").get_data(as_text=True)
    assert "form “Demo request”" in old and "campaign “Spring launch”" in old
    assert "Make a new version from this one" not in old  # restoring is the marketer's
    token = csrf_from(old)
    assert client.post("/admin/scoring/versions/1", data={"csrf_token": token}).status_code == 403
    assert len(versions()) == 3

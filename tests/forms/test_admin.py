"""The marketer's screens: building forms, the embed snippet, submissions and quarantine."""

import re

import pytest
import sqlalchemy as sa

from app.db import db
from app.outbox import OutboxJob
from forms.models import Form
from tests.forms.support import LISTENER, leads, submissions
from tests.helpers import csrf_from


def _builder(client, form) -> str:
    return client.get(f"/admin/forms/{form.id}").get_data(as_text=True)


def _post(client, form, path, data):
    token = csrf_from(_builder(client, form))
    return client.post(f"/admin/forms/{form.id}{path}", data={"csrf_token": token, **data})


def _page_fields(page, form) -> list[str]:
    html = page.get(form).get_data(as_text=True)
    return [n for n in re.findall(r"<label for=\"([a-z_]+)\"", html) if n != "website"]


@pytest.mark.parametrize("path", ["/admin/forms/", "/admin/forms/1", "/admin/forms/quarantine",
                                  "/admin/forms/submissions"])
def test_sales_users_cannot_open_the_builder(client, auth, make_form, path):
    make_form()
    auth.login_as("sales")
    assert client.get(path).status_code == 403


def test_a_new_form_starts_with_its_email_field(client, auth):
    auth.login_as("marketer")
    page = client.get("/admin/forms/")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post("/admin/forms/", data={"name": "Webinar", "csrf_token": token})
    assert response.status_code == 302
    form = db.session.scalar(sa.select(Form))
    assert [(f.name, f.type, f.required) for f in form.fields] == [("email", "email", True)]
    assert "Forms" in client.get("/admin/").get_data(as_text=True)  # in the navigation


def test_adding_moving_and_removing_fields_changes_the_rendered_form(client, auth, page, make_form):
    auth.login_as("marketer")
    form = make_form(fields=[])
    assert _page_fields(page, form) == ["email"]

    added = _post(client, form, "/fields", {"label": "Company", "name": "company", "type": "text",
                                            "max_length": "200"})
    assert added.status_code == 302
    _post(client, form, "/fields", {"label": "Plan", "name": "plan", "type": "select",
                                    "choices": "Free\nPro\n", "required": "y",
                                    "max_length": "200"})
    assert _page_fields(page, form) == ["email", "company", "plan"]
    assert '<option value="Pro">Pro</option>' in page.get(form).get_data(as_text=True)

    db.session.expire_all()
    plan = form.fields[2]
    _post(client, form, f"/fields/{plan.id}/move", {"direction": "up"})
    assert _page_fields(page, form) == ["email", "plan", "company"]

    db.session.expire_all()
    company = next(f for f in form.fields if f.name == "company")
    _post(client, form, f"/fields/{company.id}/delete", {})
    assert _page_fields(page, form) == ["email", "plan"]

    db.session.expire_all()
    _post(client, form, f"/fields/{form.fields[0].id}/delete", {})  # the email field stays
    assert _page_fields(page, form) == ["email", "plan"]


@pytest.mark.parametrize("name,message", [
    ("First Name", "lower-case letters"), ("1st", "lower-case letters"), ("x" * 61, "1 to 60"),
    ("csrf_token", "reserved"), ("website", "reserved"), ("ts", "reserved"),
    ("consent", "reserved"), ("utm_foo", "reserved"), ("referrer", "reserved"),
    ("data", "reserved"), ("email", "already has a field"),
])
def test_field_names_must_be_safe_identifiers(client, auth, make_form, name, message):
    auth.login_as("marketer")
    form = make_form(fields=[])
    response = _post(client, form, "/fields", {"label": "X", "name": name, "type": "text",
                                               "max_length": "200"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="name-error"' in html and message in html
    db.session.expire_all()
    assert len(form.fields) == 1


def test_editing_a_field_rebuilds_the_form(client, auth, page, make_form):
    auth.login_as("marketer")
    form = make_form()
    spec = form.fields[1]
    assert "First name" in page.get(form).get_data(as_text=True)
    path = f"/admin/forms/{form.id}/fields/{spec.id}"
    token = csrf_from(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"csrf_token": token, "label": "Given name",
                                       "name": "first_name", "type": "text",
                                       "help_text": "As on your badge", "max_length": "50"})
    assert response.status_code == 302
    html = page.get(form).get_data(as_text=True)
    assert "Given name" in html and "As on your badge" in html and 'maxlength="50"' in html


def test_settings_are_saved_and_checked(client, auth, make_form):
    auth.login_as("marketer")
    form = make_form()
    data = {"name": "Guide", "submit_label": "Get it", "success_message": "Done!",
            "consent_enabled": "y", "consent_required": "y", "consent_text": "Email me.",
            "consent_version": "v2", "double_opt_in": "y", "confirmation_expiry_hours": "48",
            "min_submit_seconds": "3", "blocked_domains": "@Mailinator.com\n\nspam.example",
            "allowed_origins": "https://WWW.Acme.example/\nhttp://127.0.0.1:8765"}
    bad = _post(client, form, "", {**data, "allowed_origins": "https://acme.example/path",
                                   "consent_text": ""})
    assert bad.status_code == 400
    assert "Not an origin" in bad.get_data(as_text=True)
    assert "Write the consent text" in bad.get_data(as_text=True)
    version = form.version
    saved = _post(client, form, "", data)
    assert saved.status_code == 302
    db.session.expire_all()
    assert (form.name, form.double_opt_in, form.confirmation_expiry_hours,
            form.min_submit_seconds, form.consent_version) == ("Guide", True, 48, 3, "v2")
    assert form.blocked_domains == ["mailinator.com", "spam.example"]
    assert form.allowed_origins == ["https://www.acme.example", "http://127.0.0.1:8765"]
    assert form.version > version


def test_the_builder_shows_the_embed_snippet(client, auth, make_form):
    auth.login_as("marketer")
    form = make_form()
    html = _builder(client, form)
    assert (f'&lt;script src=&#34;http://kindling.test/f/{form.key}/embed.js&#34; async&gt;'
            f'&lt;/script&gt;') in html
    assert f'&lt;div data-kindling-form=&#34;{form.key}&#34;&gt;&lt;/div&gt;' in html


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "Ann\r\nBcc: x@example.com",
                                  '=HYPERLINK("http://evil.example","click")'])
def test_what_leads_type_is_stored_as_text_and_shown_escaped(client, auth, page, make_form, name):
    form = make_form(fields=[("first_name", "First name", "text", False),
                             ("notes", "Notes", "textarea", False)])
    page.post(form, {"email": "ann@example.com", "first_name": name, "notes": name})
    page.post(form, {"email": "bot@example.com", "first_name": name, "website": "x"})
    (lead,) = leads()
    assert lead.first_name == name.strip() and lead.attributes == {"notes": name.strip()}
    assert submissions()[1].raw["first_name"] == name  # the suspect's post, kept as typed
    auth.login_as("marketer")
    for path in ("/admin/forms/submissions", f"/admin/forms/{form.id}/submissions",
                 "/admin/forms/quarantine"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html
        if "<" in name:
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        if "HYPERLINK" in name:
            assert "=HYPERLINK(&#34;http://evil.example&#34;" in html


def test_submissions_are_listed_newest_first_and_paginated(client, auth, page, make_form):
    form = make_form()
    for n in range(3):
        page.post(form, {"email": f"p{n}@example.com"})
    auth.login_as("marketer")
    html = client.get("/admin/forms/submissions").get_data(as_text=True)
    positions = [html.index(f"p{n}@example.com") for n in (2, 1, 0)]
    assert positions == sorted(positions)
    assert "Page 1 of 1 (3 submissions in all)" in html


def test_release_turns_a_quarantined_submission_into_a_lead(client, auth, page, make_form):
    form = make_form()
    page.post(form, {"email": "ann@example.com", "first_name": "Ann", "website": "spam"})
    (held,) = submissions()
    assert held.status == "quarantined" and leads() == []

    auth.login_as("marketer")
    html = client.get("/admin/forms/quarantine").get_data(as_text=True)
    assert "honeypot field filled" in html and "ann@example.com" in html
    response = client.post(f"/admin/forms/submissions/{held.id}/release",
                           data={"csrf_token": csrf_from(html)})
    assert response.status_code == 302

    (lead,) = leads()
    assert (lead.email, lead.first_name) == ("ann@example.com", "Ann")
    (released,) = submissions()
    assert released.status == "released" and released.lead_id == lead.id
    assert released.released_by.email == "marketer@example.com" and released.released_at
    jobs = db.session.scalars(sa.select(OutboxJob.job)).all()
    assert LISTENER in jobs and "forms.jobs.send_confirmation" not in jobs  # follow-up runs now
    listed = client.get("/admin/forms/submissions").get_data(as_text=True)
    assert "released by marketer@example.com" in listed
    again = client.post(f"/admin/forms/submissions/{held.id}/release",
                        data={"csrf_token": csrf_from(html)})
    assert again.status_code == 302 and len(leads()) == 1


def test_a_quarantined_submission_with_a_bad_address_cannot_be_released(client, auth, make_form):
    from forms import pipeline

    form = make_form()
    pipeline.quarantine(form, {"email": "not-an-address"}, {"email": "not-an-address"},
                        pipeline.Context(), "honeypot field filled")
    auth.login_as("marketer")
    html = client.get("/admin/forms/quarantine").get_data(as_text=True)
    (held,) = submissions()
    response = client.post(f"/admin/forms/submissions/{held.id}/release",
                           data={"csrf_token": csrf_from(html)}, follow_redirects=True)
    assert "Not released" in response.get_data(as_text=True)
    assert leads() == [] and submissions()[0].status == "quarantined"

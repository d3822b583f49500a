"""XSS through every lead field: a lead whose every field (and raw submission) carries markup
is shown on every staff page that lists or shows it, in the sales alert and in a nurture email,
and nowhere does the markup come out live; the CSV export defuses formula-looking cells."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser

import sqlalchemy as sa

from app.db import db
from app.sales import alerts
from app.sales.export import FORMULA_STARTS
from forms.admin import create_form
from forms.models import FormField
from nurture.enrollment import enroll
from nurture.render import render_step
from tests.app.sales.helpers import body, handed_off, links_in, mails
from tests.nurture.factories import email_step, make_sequence

SITE = "https://www.acme.example"
EMAIL = "dana@acme.example.com"
FIELDS = ("first_name", "last_name", "company", "job_title", "phone")


class _Live(HTMLParser):
    """What would run in a browser: event-handler attributes, `javascript:` URLs, scripts
    that call alert, and the payloads' own tags (our pages use none of them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on") or name == "autofocus":
                self.found.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip() \
                    .lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value}>")
        if tag in ("svg",) or (tag == "img" and dict(attrs).get("src") == "x"):
            self.found.append(f"<{tag}>")
        self._script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._script and "alert(" in data:
            self.found.append(f"<script>{data[:40]}")

    def handle_endtag(self, tag: str) -> None:
        self._script = False


def live(html: str) -> list[str]:
    parser = _Live()
    parser.feed(html)
    parser.close()
    return parser.found


def payload(field: str) -> str:
    return f'<script>alert("{field}")</script><img src=x onerror=alert(1)>'


ATTRIBUTES = {"<svg onload=alert(1)>": '" autofocus onfocus="alert(1)',
              "website": "javascript:alert(1)"}


def _lead_everywhere(client):
    """The lead handed to sales (alert sent), submitted through a form, enrolled in a sequence."""
    lead, alert = handed_off(email=EMAIL, **{f: payload(f) for f in FIELDS}, **ATTRIBUTES)
    alerts.send(alert.id)
    form = create_form('Guide <script>alert("form")</script>')
    for position, name in enumerate(("first_name", "company", "notes"), start=1):
        form.fields.append(FormField(name=name, label=name, type="text", required=False,
                                     position=position, choices=[]))
    form.allowed_origins, form.min_submit_seconds = [SITE], 0
    form.touch()
    db.session.commit()
    token = client.get(f"/api/forms/{form.key}", headers={"Origin": SITE}).get_json()["token"]
    response = client.post(f"/api/forms/{form.key}/submissions", headers={"Origin": SITE},
                           json={"email": EMAIL, "first_name": payload("first_name"),
                                 "company": payload("company"), "notes": payload("notes"),
                                 "utm_campaign": payload("utm"), "token": token})
    assert response.status_code == 202, response.get_json()
    sequence = make_sequence(email_step(
        subject="Hi {{ lead.first_name }} at {{ lead.company }}",
        body="Dear {{ lead.full_name }} ({{ lead.job_title }}, {{ lead.phone }}), "
             "{{ lead.attributes }} {{ lead.attributes.website }}"))
    enroll(lead.id, sequence.id, "test")
    db.session.commit()
    return lead, form, sequence


def test_the_detector_sees_live_markup():
    assert live('<p><img src=x onerror=alert(1)></p>') and live('<a href=" JavaScript:x">')
    assert live('<div title="" autofocus onfocus="alert(1)">') and live("<script>alert(1)</script>")
    assert live("<p>&lt;script&gt;alert(1)&lt;/script&gt; \" autofocus onfocus=</p>") == []


def test_lead_markup_never_comes_out_live(app, client, auth):
    lead, form, sequence = _lead_everywhere(client)
    step = sequence.steps[0]
    auth.login_as("admin")
    pages = ["/admin/", "/admin/leads/", f"/admin/leads/{lead.id}", "/admin/leads/?q=dana",
             "/sales/queue", "/admin/forms/submissions", f"/admin/forms/{form.id}/submissions",
             "/admin/forms/", f"/admin/nurture/{sequence.id}/enrollments",
             f"/admin/nurture/{sequence.id}/steps/{step.id}?lead_id={lead.id}",
             f"/admin/nurture/{sequence.id}/steps/{step.id}/preview?lead_id={lead.id}",
             "/admin/api/pick/lead?q=dana", "/admin/outbox/"]
    shown = {}
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)
        text = response.get_data(as_text=True)
        if page.startswith("/admin/api/"):  # data, never read as HTML by a browser
            assert response.mimetype == "application/json" and "dana" in text
            continue
        assert live(text) == [], page
        shown[page] = text
    lead_page = shown[f"/admin/leads/{lead.id}"]
    for field in FIELDS:  # the page really shows them, escaped
        assert f"&lt;script&gt;alert(&#34;{field}&#34;)" in lead_page \
            or f"&lt;script&gt;alert(&quot;{field}&quot;)" in lead_page, field

    (alert_mail,) = mails()
    assert live(body(alert_mail, "html")) == []
    assert "\n" not in alert_mail["Subject"]
    auth.logout()
    assert auth.login("sam@example.com").status_code == 302  # the owner the alert went to
    decision = client.get(links_in(alert_mail)["accept"])
    assert decision.status_code == 200, decision.headers.get("Location")
    assert live(decision.get_data(as_text=True)) == []

    rendered = render_step(step, lead, unsubscribe_url="http://kindling.test/u/x")
    assert live(rendered.html) == []
    assert "\n" not in rendered.subject and "&lt;script&gt;" in rendered.html


def test_the_csv_export_defuses_formulas_in_every_lead_field(app, client, auth):
    formulas = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)",
                "\t=1", "=cmd|' /C calc'!A0"]
    handed_off(None, email=EMAIL, **dict(zip(FIELDS, formulas, strict=False)),
               region=formulas[-1])
    handed_off(None, email="=1+1@example.com", first_name="Eve")
    auth.login_as("admin")
    response = client.get("/sales/export.csv?columns=" + ",".join(
        ("email", *FIELDS)) + "&stage=mql")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    cells = [cell for row in rows[1:] for cell in row]
    assert len(rows) == 3 and "'=1+1@example.com" in cells
    assert [c for c in cells if c.startswith(FORMULA_STARTS)] == []
    assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in cells
    db.session.expire_all()
    assert db.session.scalar(sa.text("select count(*) from leads")) == 2

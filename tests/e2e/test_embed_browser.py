"""The embed snippet on a customer's site (another origin) in a real browser: the form renders,
explains a mistake, thanks the visitor, and the lead arrives with channel "embed". A site that
is not allowed gets no form and no lead."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.e2e

MIN_SUBMIT_SECONDS = 1
PAST_MIN_TIME_MS = 1_100
SUCCESS = "Thanks! The guide is on its way to your inbox."

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme blog</title></head>
<body>
<h1>Acme blog</h1>
<p>Subscribe for the guide:</p>
<div data-kindling-form="{key}"></div>
<script src="{kindling}/f/{key}/embed.js" async></script>
</body></html>
"""


def _make_form(db_app, allowed_origins: list[str]) -> str:
    from app.db import db
    from tests.campaigns.helpers import make_form

    with db_app.app_context():
        form = make_form()
        form.min_submit_seconds = MIN_SUBMIT_SECONDS
        form.allowed_origins = allowed_origins
        form.success_message = SUCCESS
        form.touch()
        db.session.commit()
        key = form.key
        db.session.remove()
    return key


def _host(static_site, live_server, key: str):
    return static_site({"/": HOST_PAGE.format(key=key, kindling=live_server.url)})


def _stored(db_app) -> tuple[list[dict], list[dict]]:
    """(leads, submissions) in the live server's database."""
    from app.db import db
    from app.leads.models import Lead
    from forms.models import Submission

    with db_app.app_context():
        from forms import processor

        processor.drain()  # what the worker does a moment after the submit
        leads = [{"id": lead.id, "email": lead.email, "first_name": lead.first_name}
                 for lead in db.session.scalars(sa.select(Lead).order_by(Lead.id))]
        subs = [{"status": s.status, "channel": s.channel, "lead_id": s.lead_id,
                 "landing_url": s.landing_url}
                for s in db.session.scalars(sa.select(Submission).order_by(Submission.id))]
        db.session.remove()
    return leads, subs


def _described_by_text(page, locator) -> list[str]:
    ids = (locator.get_attribute("aria-describedby") or "").split()
    texts = []
    for ident in ids:
        target = page.locator(f"[id='{ident}']")
        if target.count() == 1 and target.is_visible():
            texts.append(target.inner_text().strip())
    return texts


def test_the_embedded_form_works_on_an_allowed_site(live_server, page, db_app, static_site):
    key = _make_form(db_app, [])
    host = _host(static_site, live_server, key)
    assert host.url != live_server.url  # another port: another origin
    with db_app.app_context():
        from app.db import db
        from forms.models import Form

        form = db.session.scalar(sa.select(Form).where(Form.key == key))
        form.allowed_origins = [host.url]
        form.touch()
        db.session.commit()
        db.session.remove()

    page.goto(f"{host.url}/")
    email = page.get_by_label("Work email")
    email.wait_for()  # rendered by the script from the API's definition
    email.fill("a@b")
    page.get_by_label("First name").fill("Cy")
    page.wait_for_timeout(PAST_MIN_TIME_MS)
    page.get_by_role("button", name="Get the guide").click()

    summary = page.get_by_role("alert")
    summary.wait_for()
    assert "Please correct the fields marked below." in summary.inner_text()
    assert email.get_attribute("aria-invalid") == "true"
    texts = _described_by_text(page, email)
    assert any(t.startswith("Enter a valid email address") for t in texts), texts
    assert page.get_by_label("First name").input_value() == "Cy"  # kept
    assert _stored(db_app) == ([], [])

    email.fill("cy@example.com")
    page.get_by_role("button", name="Get the guide").click()
    done = page.get_by_role("status")
    done.wait_for()
    assert done.inner_text() == SUCCESS
    assert page.get_by_label("Work email").count() == 0  # the form made way for the thanks

    leads, subs = _stored(db_app)
    assert [(lead["email"], lead["first_name"]) for lead in leads] == [("cy@example.com", "Cy")]
    (sub,) = subs
    assert sub["status"] == "accepted" and sub["channel"] == "embed"  # not quarantined
    assert sub["lead_id"] == leads[0]["id"]
    assert sub["landing_url"] == f"{host.url}/"


def test_a_site_that_is_not_allowed_gets_no_form_and_no_lead(watched_live_server, page, db_app,
                                                              static_site):
    live_server = watched_live_server
    allowed = static_site({"/": "<!doctype html><title>allowed</title>"})
    key = _make_form(db_app, [allowed.url])
    stranger = _host(static_site, live_server, key)

    page.goto(f"{stranger.url}/")
    page.get_by_text("This form could not be loaded.").wait_for()
    assert page.get_by_label("Work email").count() == 0
    assert ("GET", f"/api/forms/{key}", 403, stranger.url) in live_server.answers

    # Even a hand-made post with a valid form token (no preflight: a "simple" request) is refused.
    from forms import spam
    from forms.builder import EMBED_TOKEN
    from forms.models import Form

    with db_app.app_context():
        from app.db import db

        token = spam.embed_token(db.session.scalar(sa.select(Form).where(Form.key == key)))
        db.session.remove()
    page.wait_for_timeout(PAST_MIN_TIME_MS)
    script = """async ([url, tokenField, token]) => {
        const body = new URLSearchParams({email: "eve@example.com", first_name: "Eve"});
        body.set(tokenField, token);
        try { await fetch(url, {method: "POST", body, credentials: "omit"}); return "read"; }
        catch (e) { return "blocked"; }
    }"""
    path = f"/api/forms/{key}/submissions"
    outcome = page.evaluate(script, [f"{live_server.url}{path}", EMBED_TOKEN, token])
    assert outcome == "blocked"  # no CORS answer for a stranger: the page cannot read it
    assert ("POST", path, 403, stranger.url) in live_server.answers
    assert _stored(db_app) == ([], [])

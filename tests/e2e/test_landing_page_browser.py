"""A visitor fills in a campaign landing page in a real browser: a mistake is explained next to
its field without losing what was typed, the corrected form reaches the thank-you page, and the
lead exists. The page needs no JavaScript."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.e2e

MIN_SUBMIT_SECONDS = 1  # the spam check's minimum time between render and submit
PAST_MIN_TIME_MS = 1_100


def _make_landing_page(db_app, slug: str = "guide") -> None:
    from app.db import db
    from tests.campaigns.helpers import make_form, make_page

    with db_app.app_context():
        form = make_form()
        form.min_submit_seconds = MIN_SUBMIT_SECONDS
        form.touch()
        db.session.commit()
        make_page(slug, form=form)
        db.session.remove()


def _accepted_lead(db_app, email: str):
    """(lead, its submissions) for `email`, read fresh from the live server's database."""
    from app.db import db
    from app.leads.models import Lead
    from forms.models import Submission

    with db_app.app_context():
        from forms import processor

        processor.drain()  # what the worker does a moment after the submit
        lead = db.session.scalar(sa.select(Lead).where(Lead.email == email))
        subs = db.session.scalars(sa.select(Submission).order_by(Submission.id)).all()
        found = (None if lead is None else
                 {"email": lead.email, "first_name": lead.first_name, "company": lead.company},
                 [{"status": s.status, "channel": s.channel, "lead_id": s.lead_id,
                   "landing_page_id": s.landing_page_id, "is_lead": lead is not None
                   and s.lead_id == lead.id} for s in subs])
        db.session.remove()
    return found


def _count_leads(db_app) -> int:
    from app.db import db
    from app.leads.models import Lead

    with db_app.app_context():
        from forms import processor

        processor.drain()  # what the worker does a moment after the submit
        number = db.session.scalar(sa.select(sa.func.count()).select_from(Lead))
        db.session.remove()
    return number


def _submit(page) -> None:
    """Press the button like a person (slower than the minimum time) and wait for the answer."""
    page.wait_for_timeout(PAST_MIN_TIME_MS)
    with page.expect_navigation():
        page.get_by_role("button", name="Get the guide").click()


def test_a_mistake_is_shown_at_its_field_and_the_corrected_form_reaches_the_thank_you_page(
        live_server, page, db_app):
    _make_landing_page(db_app)

    page.goto(f"{live_server.url}/p/guide")
    assert page.get_by_role("heading", name="Get the guide", level=1).is_visible()
    email = page.get_by_label("Work email")
    email.fill("a@b")
    page.get_by_label("First name").fill("Ann")
    page.get_by_label("Company").fill("Acme Ltd")
    _submit(page)

    # The same page again, telling the visitor what is wrong and where.
    assert page.url == f"{live_server.url}/p/guide"
    assert page.title().startswith("Error:")
    assert page.get_by_role("heading", name="There is a problem with your answers").is_visible()
    assert email.get_attribute("aria-invalid") == "true"
    described_by = (email.get_attribute("aria-describedby") or "").split()
    assert described_by, "the email field points at no description"
    messages = [page.locator(f"[id='{ident}']") for ident in described_by]
    visible = [m.inner_text().strip() for m in messages if m.count() == 1 and m.is_visible()]
    assert any(text.startswith("Enter a valid email address") for text in visible), visible
    # The other answers survived the round trip, and so did the mistake, to be corrected.
    assert page.get_by_label("First name").input_value() == "Ann"
    assert page.get_by_label("Company").input_value() == "Acme Ltd"
    assert email.input_value() == "a@b"
    assert _count_leads(db_app) == 0

    # The summary's link takes the visitor to the field.
    page.get_by_role("link", name=re.compile("Work email")).click()
    assert email.evaluate("node => node === document.activeElement")

    email.fill("ann@example.com")
    _submit(page)
    page.wait_for_url(re.compile(re.escape(f"{live_server.url}/p/guide/thanks/")))
    assert page.get_by_role("heading", name="Thanks, it is yours").is_visible()
    assert page.get_by_text("Enjoy the guide.").is_visible()

    lead, submissions = _accepted_lead(db_app, "ann@example.com")
    assert lead == {"email": "ann@example.com", "first_name": "Ann", "company": "Acme Ltd"}
    (submission,) = submissions  # the invalid post stored nothing
    assert submission["status"] == "accepted" and submission["channel"] == "hosted"
    assert submission["is_lead"] and submission["landing_page_id"] is not None


def test_the_landing_page_works_without_javascript(live_server, new_page, db_app):
    _make_landing_page(db_app)
    page = new_page(java_script_enabled=False)

    page.goto(f"{live_server.url}/p/guide")
    page.get_by_label("Work email").fill("a@b")
    page.get_by_label("First name").fill("Bo")
    _submit(page)
    error_id = page.get_by_label("Work email").get_attribute("aria-describedby")
    assert error_id, "the email field points at no error"
    error = page.locator(f"[id='{error_id.split()[-1]}']")
    assert error.is_visible() and "Enter a valid email address" in error.inner_text()
    assert page.get_by_label("First name").input_value() == "Bo"

    page.get_by_label("Work email").fill("bo@example.com")
    _submit(page)
    page.wait_for_url(re.compile(re.escape(f"{live_server.url}/p/guide/thanks/")))
    assert page.get_by_role("heading", name="Thanks, it is yours").is_visible()

    lead, submissions = _accepted_lead(db_app, "bo@example.com")
    assert lead is not None and lead["first_name"] == "Bo"
    assert [s["status"] for s in submissions] == ["accepted"]

"""The admin in a real browser: a phone-width screen, the pickers, slugs that follow names."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    # Three demo leads: more than this, so the lead picker is a search box as on a real install.
    return {**app_config, "PICKER_SELECT_MAX": 2}


@pytest.fixture
def demo(db_app: Any) -> dict[str, Any]:
    """The demo workspace (what `make run` shows), and one email in the outbox."""
    from app import mail
    from app.db import db
    from app.leads.models import Lead
    from app.seed import run_seeders
    from campaigns.models import Campaign
    from forms.models import Form
    from nurture.models import Sequence

    with db_app.app_context():
        run_seeders(db_app)
        mail.backend().send(mail.new_email("ann@example.com", "Hello Ann", "<p>Hi</p>", "Hi"))
        sequence = db.session.scalar(sa.select(Sequence))
        ids = {"sequence": sequence.id, "step": sequence.steps[0].id,
               "campaign": db.session.scalar(sa.select(Campaign.id)),
               "form": db.session.scalar(sa.select(Form.id)),
               "lead": db.session.scalar(sa.select(Lead.id).order_by(Lead.id)),
               "message": mail.backend().messages()[0].stem}
        db.session.remove()
    return ids


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("kindling-demo")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/admin/")


def admin_pages(demo: dict[str, Any]) -> list[str]:
    """Every main page of the admin and the sales desk, with the demo's records."""
    return [
        "/admin/", "/admin/leads/", f"/admin/leads/{demo['lead']}", "/admin/outbox/",
        f"/admin/outbox/{demo['message']}", "/admin/users", "/admin/forms/",
        f"/admin/forms/{demo['form']}", "/admin/forms/submissions", "/admin/campaigns/",
        f"/admin/campaigns/{demo['campaign']}", f"/admin/campaigns/{demo['campaign']}/pages/new",
        "/admin/campaigns/assets", "/admin/nurture/", f"/admin/nurture/{demo['sequence']}",
        f"/admin/nurture/{demo['sequence']}/steps/{demo['step']}",
        f"/admin/nurture/{demo['sequence']}/enrollments", "/admin/scoring/",
        "/admin/scoring/thresholds", "/admin/scoring/versions", "/admin/scoring/calibration",
        "/admin/tracking/", "/admin/reports/", "/admin/reports/funnel", "/admin/reports/speed",
        "/admin/reports/email", "/admin/reports/scores",
        "/sales/queue", "/sales/export", "/sales/settings",
    ]


def test_every_main_admin_page_fits_a_390_px_screen(live_server, new_page, demo):
    page = new_page(viewport=PHONE)
    sign_in(page, live_server.url, "admin@example.com")
    wider = {}
    for path in admin_pages(demo):
        page.goto(live_server.url + path)
        assert page.locator("h1").first.is_visible(), path
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            wider[path] = overflow
        # CSP-friendly: no inline script, no inline event handler
        assert page.evaluate("""() => document.querySelectorAll('script:not([src])').length
            + [...document.querySelectorAll('*')].filter(el => [...el.attributes].some(
                a => a.name.startsWith('on'))).length""") == 0, path
        assert page.locator('nav[aria-label="Admin"] [aria-current="page"]').count() == 1, path
    assert wider == {}  # no page scrolls sideways

    # A wide table scrolls inside its own box instead of the page.
    page.goto(f"{live_server.url}/admin/scoring/")
    assert page.evaluate("""() => [...document.querySelectorAll('.table-scroll')].some(
        box => box.scrollWidth > box.clientWidth)""")
    # The navigation wraps: every item is on screen, none hidden off to the right.
    assert page.evaluate("""() => [...document.querySelectorAll('nav[aria-label="Admin"] a')]
        .every(a => a.getBoundingClientRect().right <= document.documentElement.clientWidth)""")


def test_every_report_table_fits_a_1280_px_screen(live_server, new_page, demo):
    """On a laptop, a report's numbers are all in view: no table hides columns off to the
    right of its card (the funnel per campaign and the cost table have 10-15 columns)."""
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live_server.url, "marketer@example.com")
    hidden = {}
    for slug in ("funnel", "over-time", "cost", "speed", "email", "scores"):
        page.goto(f"{live_server.url}/admin/reports/{slug}")
        expect(page.locator("h1")).to_be_visible()
        cut = page.evaluate("""() => [...document.querySelectorAll('.table-scroll')]
            .filter(box => box.scrollWidth > box.clientWidth + 1)
            .map(box => box.getAttribute('aria-label'))""")
        if cut:
            hidden[slug] = cut
    assert hidden == {}


def test_a_marketer_picks_a_lead_and_a_campaign_for_the_preview(live_server, new_page, demo):
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live_server.url, "marketer@example.com")
    page.goto(f"{live_server.url}/admin/nurture/{demo['sequence']}/steps/{demo['step']}")

    box = page.get_by_label("Preview for lead")
    box.click()
    box.press_sequentially("dana", delay=40)  # as typed: suggestions come from the endpoint
    page.wait_for_function("""() => {
        const list = document.getElementById('lead_id-options');
        return list && list.options.length > 0 && list.options[0].value.includes('dana');
    }""")
    suggestion = page.evaluate("document.getElementById('lead_id-options').options[0].value")
    assert suggestion.startswith("Dana Okafor <dana.director@") and suggestion.endswith(")")
    box.fill(suggestion)  # what choosing the suggestion puts in the box
    page.get_by_label("With campaign").select_option(label="Demo campaign")  # a short list
    page.get_by_role("button", name="Show").click()

    # The preview page is a new page load: wait for it (a busy machine takes a while).
    expect(page.get_by_text("For Dana Okafor, with the campaign “Demo campaign”")).to_be_visible()
    frame = page.frame_locator("iframe.mail-preview")
    expect(frame.get_by_text("Hi Dana")).to_be_visible()
    assert page.get_by_label("Preview for lead").input_value() == suggestion  # kept, by name

    page.get_by_label("Preview for lead").fill("nobody@example.com")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("No lead matches “nobody@example.com”")).to_be_visible()
    assert page.locator("iframe.mail-preview").count() == 0


def test_the_slug_follows_the_name_until_it_is_edited(live_server, new_page, demo):
    page = new_page()
    sign_in(page, live_server.url, "marketer@example.com")
    page.goto(f"{live_server.url}/admin/campaigns/new")
    name, slug = page.get_by_label("Name", exact=True), page.get_by_label("Slug")
    name.press_sequentially("Spring Launch – Café", delay=10)
    assert slug.input_value() == "spring-launch-cafe"
    slug.fill("spring-26")  # edited by hand: from now on it stays
    name.press_sequentially(" 2026", delay=10)
    assert slug.input_value() == "spring-26"

    page.goto(f"{live_server.url}/admin/campaigns/{demo['campaign']}/pages/new")
    address = page.get_by_label("Address (/p/…)")
    assert address.input_value() == "demo-2"  # the campaign's own address is taken
    page.get_by_label("Headline", exact=True).press_sequentially("Get the checklist", delay=10)
    assert address.input_value() == "get-the-checklist"


# axe-core's rules for WCAG 2.0 and 2.1, levels A and AA (contrast, names, labels, structure).
WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def test_every_page_passes_an_automatic_wcag_21_aa_check(live_server, new_page, demo):
    """Deque's axe-core finds no WCAG 2.1 A or AA failure on any main page: the public ones a
    visitor meets (a form with its mistakes shown too) and every admin and sales page."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    page = new_page()
    failures: dict[str, list[str]] = {}

    def check(label: str) -> None:
        found = axe.run(page, options=WCAG_AA).response["violations"]
        if found:
            failures[label] = [f"{v['id']}: {[n['target'] for n in v['nodes'][:3]]}"
                               for v in found]

    for path in ("/p/demo", "/login", "/password-reset"):
        page.goto(live_server.url + path)
        check(path)
    page.goto(live_server.url + "/p/demo")
    page.locator("input[name=email]").fill("not an address")
    page.locator("form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("[aria-invalid=true]").count() > 0  # the server's answer, mistakes shown
    check("/p/demo with its mistakes shown")

    sign_in(page, live_server.url, "admin@example.com")
    for path in admin_pages(demo):
        page.goto(live_server.url + path)
        check(path)
    assert failures == {}

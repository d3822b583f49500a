"""The admin shell: one highlighted navigation item, counts in words, pickers by name."""

from __future__ import annotations

import re

from app.db import db
from app.leads.service import upsert_lead
from app.templating import plural

CURRENT = re.compile(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>')


def current_nav(html: str) -> list[str]:
    nav = html.split('<nav aria-label="Admin">', 1)[1].split("</nav>", 1)[0]
    return [label for _, label in CURRENT.findall(nav)]


def test_exactly_one_nav_item_is_highlighted_the_longest_matching_one(client, auth, app):
    auth.login_as("admin")
    assert current_nav(client.get("/admin/").get_data(as_text=True)) == ["Dashboard"]
    assert current_nav(client.get("/admin/campaigns/assets").get_data(as_text=True)) \
        == ["Assets"]
    assert current_nav(client.get("/admin/campaigns/").get_data(as_text=True)) == ["Campaigns"]
    assert current_nav(client.get("/sales/export").get_data(as_text=True)) == ["Export"]
    assert current_nav(client.get("/sales/settings").get_data(as_text=True)) \
        == ["Sales settings"]
    lead = upsert_lead("ann@example.com").lead
    db.session.commit()
    assert current_nav(client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)) \
        == ["Leads"]
    assert current_nav(client.get("/admin/scoring/thresholds").get_data(as_text=True)) \
        == ["Scoring"]


def test_a_page_below_another_nav_item_highlights_only_itself(app, client, auth):
    # Leads → Import at /admin/leads/import: "Import" alone, not "Leads" as well.
    auth.login_as("marketer")
    assert current_nav(client.get("/admin/leads/import").get_data(as_text=True)) == ["Import"]
    assert current_nav(client.get("/admin/leads/").get_data(as_text=True)) == ["Leads"]


def test_plural_says_one_lead_and_two_leads():
    assert plural(1, "lead") == "1 lead"
    assert plural(2, "lead") == "2 leads"
    assert plural(0, "lead") == "0 leads"
    assert plural(1204, "lead") == "1,204 leads"
    assert plural(2, "person", "people") == "2 people"
    assert plural(1, "lead", number=False) == "lead"


def test_a_missing_admin_page_offers_the_way_back_and_a_public_one_does_not(client, auth):
    """A mistyped or stale admin address is a dead end without the admin's navigation: the
    page links to the dashboard. A visitor's missing page names nothing of the admin."""
    auth.login_as("sales")
    for path in ("/admin/no-such-page", "/sales/no-such-page", "/admin/leads/999999"):
        missing = client.get(path)
        assert missing.status_code == 404, path
        assert 'href="/admin/">Back to the dashboard</a>' in missing.get_data(as_text=True)
    public = client.get("/p/no-such-page")
    assert public.status_code == 404 and "/admin" not in public.get_data(as_text=True)

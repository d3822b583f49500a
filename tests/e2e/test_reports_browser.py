"""The funnel of the demo campaign in a real browser: the chart's numbers are the CSV's."""

from __future__ import annotations

import csv
import io

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_funnel_chart_matches_its_csv(live_server, page, db_app):
    from app.db import db
    from app.seed import run_seeders

    with db_app.app_context():
        run_seeders(db_app)  # the demo: campaign, six weeks of history, rollups
        db.session.remove()

    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("marketer@example.com")
    page.get_by_label("Password").fill("kindling-demo")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Reports").first.click()
    page.get_by_role("link", name="Funnel").first.click()
    page.get_by_role("textbox", name="From").fill("2020-01-01")
    page.get_by_role("combobox", name="Campaign").select_option(label="Demo campaign")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**campaign=*")

    chart = page.get_by_role("img", name="Funnel, Demo campaign")
    assert chart.is_visible()
    drawn = {bar.get_attribute("data-label"): int(bar.get_attribute("data-value"))
             for bar in chart.locator(".bar").all()}
    assert drawn["Leads"] > 0 and drawn["Customer"] > 0  # the demo closed deals

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV of Funnel").first.click()
    with open(download.value.path(), encoding="utf-8") as fh:
        text = fh.read()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["stage"]: int(row["count"]) for row in rows} == drawn
    # The table beside the chart says the same.
    for label, value in drawn.items():
        assert page.get_by_role("row", name=label).first.get_by_role("cell").first \
            .inner_text().replace(",", "") == str(value)

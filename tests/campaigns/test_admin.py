"""The marketer's campaign screens: list with cost per lead, editors, uploads, access."""

import io
import os
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from app.db import db
from app.leads.service import upsert_lead
from campaigns.models import Asset, Campaign, LandingPage
from forms.models import Submission
from tests.campaigns.helpers import PDF, make_form, make_page
from tests.helpers import csrf_from

CAMPAIGN = {"name": "Spring launch", "slug": "spring-launch", "status": "draft",
            "channel": "paid", "utm_source": "google", "utm_medium": "cpc",
            "utm_campaign": "spring", "cost": "1200.50", "currency": "USD", "timezone": "Europe/Lisbon",
            "starts_on": "2026-03-01", "ends_on": "2026-05-31", "owner_id": "0"}


def _uploads(app):
    folder = os.path.join(app.config["INSTANCE_PATH"], "uploads")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_marketer_creates_and_edits_a_campaign(app, client, auth):
    auth.login_as("marketer")
    page = client.get("/admin/campaigns/new")
    assert page.status_code == 200
    response = client.post("/admin/campaigns/new",
                           data={**CAMPAIGN, "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 302
    campaign = db.session.scalar(sa.select(Campaign))
    assert campaign.slug == "spring-launch" and campaign.cost == Decimal("1200.50")
    assert str(campaign.ends_on) == "2026-05-31" and campaign.utm_medium == "cpc"
    assert campaign.timezone == "Europe/Lisbon"
    listing = client.get("/admin/campaigns/").get_data(as_text=True)
    assert "Spring launch" in listing


@pytest.mark.parametrize("changes, message", [
    ({"slug": "Spring Launch"}, "Lower-case letters, digits and hyphens"),
    ({"slug": "-spring"}, "Lower-case letters, digits and hyphens"),
    ({"slug": "a" * 81}, "Lower-case letters, digits and hyphens"),
    ({"cost": "-1"}, "Cost must be 0 or more."),
    ({"cost": "lots"}, "Not a valid decimal value."),
    ({"ends_on": "2026-02-01"}, "The end date cannot be before the start date."),
    ({"slug": "taken"}, "Another campaign already uses this slug."),
    ({"name": ""}, "Enter a name."),
    ({"timezone": "Mars/Olympus"}, "Unknown time zone: use a name like Europe/London."),
])
def test_campaign_editor_explains_what_is_wrong(app, client, auth, changes, message):
    make_page(slug="taken")
    auth.login_as("marketer")
    html = client.get("/admin/campaigns/new").get_data(as_text=True)
    response = client.post("/admin/campaigns/new",
                           data={**CAMPAIGN, **changes, "csrf_token": csrf_from(html)})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in body
    assert 'aria-invalid="true"' in body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 1


def test_landing_page_editor_saves_and_previews_a_draft(app, client, auth):
    form = make_form()
    auth.login_as("marketer")
    campaign = Campaign(name="Draft one", slug="draft-one")
    db.session.add(campaign)
    db.session.commit()
    url = f"/admin/campaigns/{campaign.id}/pages/new"
    html = client.get(url).get_data(as_text=True)
    response = client.post(url, data={
        "csrf_token": csrf_from(html), "slug": "draft-one", "headline": "Hello there",
        "body_markdown": "Some *copy*", "form_id": str(form.id), "asset_id": "0",
        "thank_you_headline": "Thanks!", "thank_you_markdown": ""})
    assert response.status_code == 302
    landing = db.session.scalar(sa.select(LandingPage))
    assert landing.form_id == form.id and landing.asset_id is None
    preview = client.get("/p/draft-one")
    assert preview.status_code == 200 and "Hello there" in preview.get_data(as_text=True)

    bad = client.post(f"/admin/campaigns/pages/{landing.id}", data={
        "csrf_token": csrf_from(html), "slug": "Bad Slug!", "headline": "",
        "form_id": "0", "asset_id": "0", "thank_you_headline": "x"})
    assert bad.status_code == 422
    assert "Enter a headline." in bad.get_data(as_text=True)


def test_sales_users_get_403_on_campaign_screens(app, client, auth):
    page = make_page()
    auth.login_as("sales")
    for url in ("/admin/campaigns/", "/admin/campaigns/new", f"/admin/campaigns/{page.campaign_id}",
                f"/admin/campaigns/pages/{page.id}", "/admin/campaigns/assets"):
        assert client.get(url).status_code == 403, url


def test_signed_out_users_are_sent_to_the_login_page(app, client):
    response = client.get("/admin/campaigns/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_cost_per_lead_is_cost_over_distinct_leads(app, client, auth):
    form = make_form()
    page = make_page(form=form, cost="500")
    make_page(slug="free", form=form, cost="0")  # no leads: no cost per lead
    ann = upsert_lead("ann@example.com").lead
    bo = upsert_lead("bo@example.com").lead
    bot = upsert_lead("cy@example.com").lead
    for lead, status in ((ann, "accepted"), (ann, "accepted"), (bo, "released"),
                         (bot, "quarantined")):
        db.session.add(Submission(form=form, lead=lead, status=status,
                                  campaign_id=page.campaign_id, landing_page_id=page.id))
    db.session.commit()
    auth.login_as("marketer")
    html = client.get("/admin/campaigns/").get_data(as_text=True)
    row = re.search(r"Campaign guide</a>.*?</tr>", html, re.DOTALL).group(0)
    assert re.search(r'data-label="leads">\s*2\s*<', row)
    assert "250.00 USD" in row  # 500 / 2 distinct leads
    free = re.search(r"Campaign free</a>.*?</tr>", html, re.DOTALL).group(0)
    assert re.search(r'data-label="cost-per-lead">\s*—', free)


def _upload(client, data: bytes, filename: str, **fields):
    html = client.get("/admin/campaigns/assets").get_data(as_text=True)
    return client.post("/admin/campaigns/assets", content_type="multipart/form-data", data={
        "csrf_token": csrf_from(html), "name": "Guide", "link_ttl_hours": "72",
        "external_url": "", "file": (io.BytesIO(data), filename), **fields})


def test_upload_of_an_allowed_file_is_stored_under_a_random_name(app, client, auth):
    auth.login_as("marketer")
    response = _upload(client, PDF, "Our guide.pdf")
    assert response.status_code == 302
    asset = db.session.scalar(sa.select(Asset))
    assert asset.filename == "Our guide.pdf" and asset.content_type == "application/pdf"
    assert asset.size == len(PDF)
    assert _uploads(app) == [asset.stored_name] and "guide" not in asset.stored_name


@pytest.mark.parametrize("data, filename, message", [
    (b"#!/bin/sh\necho hi\n", "run.sh", "Files of this type are not accepted"),
    (b"<html><script>x</script></html>", "page.html", "Files of this type are not accepted"),
    (b"MZ\x90\x00 not a pdf at all", "guide.pdf", "does not look like a PDF"),
    (b"PK\x03\x04 not really a zip", "report.docx", "does not look like a DOCX"),
    (b"", "empty.pdf", "The file is empty."),
])
def test_upload_of_a_disallowed_file_is_refused_and_nothing_stored(app, client, auth, data,
                                                                  filename, message):
    auth.login_as("marketer")
    response = _upload(client, data, filename)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalars(sa.select(Asset)).all() == []
    assert _uploads(app) == []


def test_upload_over_the_size_limit_is_refused_and_nothing_stored(app_config, make_app):
    small = make_app({**app_config, "ASSET_MAX_BYTES": 1000})
    client = small.test_client()
    with small.app_context():
        from tests.helpers import AuthActions

        AuthActions(client).login_as("marketer")
        response = _upload(client, PDF + b"0" * 2000, "big.pdf")
        assert response.status_code == 422
        assert "larger than the 1,000 byte limit" in response.get_data(as_text=True)
        assert db.session.scalars(sa.select(Asset)).all() == []
        assert _uploads(small) == []
        # Far above the limit, the request itself is refused before it is read.
        html = client.get("/admin/campaigns/assets").get_data(as_text=True)
        boundary, body = encode_multipart(MultiDict({
            "csrf_token": csrf_from(html), "name": "Huge", "link_ttl_hours": "72",
            "file": FileStorage(io.BytesIO(b"%PDF-" + b"0" * (1024 * 1024 + 5000)), "huge.pdf")}))
        huge = client.post("/admin/campaigns/assets", data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
        assert huge.status_code == 413
        assert _uploads(small) == []


def test_external_link_asset_accepts_only_http_urls(app, client, auth):
    auth.login_as("marketer")
    html = client.get("/admin/campaigns/assets").get_data(as_text=True)
    for bad in ("javascript:alert(1)", "ftp://files.example.com/x", "//evil.example.com"):
        response = client.post("/admin/campaigns/assets", data={
            "csrf_token": csrf_from(html), "name": "Link", "link_ttl_hours": "72",
            "external_url": bad})
        assert response.status_code == 422
        assert "Only http:// and https:// links are allowed." in response.get_data(as_text=True)
    ok = client.post("/admin/campaigns/assets", data={
        "csrf_token": csrf_from(html), "name": "Link", "link_ttl_hours": "72",
        "external_url": "https://example.com/guide.pdf"})
    assert ok.status_code == 302
    assert db.session.scalar(sa.select(Asset)).external_url == "https://example.com/guide.pdf"


def test_a_new_landing_page_starts_from_a_free_address_that_follows_the_headline(
        app, client, auth):
    import re

    page = make_page(slug="spring")  # its campaign's slug is taken by its first page …
    make_page(slug="spring-2")  # … and so is the next one
    campaign = page.campaign
    auth.login_as("marketer")
    url = f"/admin/campaigns/{campaign.id}/pages/new"
    html = client.get(url).get_data(as_text=True)
    slug = re.search(r'<input[^>]*name="slug"[^>]*>', html).group(0)
    assert 'value="spring-3"' in slug  # free: not the campaign's own, taken twice
    assert 'data-slug-from="headline"' in slug and 'data-slug-auto="true"' in slug
    assert re.search(r'<script src="/static/admin\.js[^"]*" defer></script>', html)

    response = client.post(url, data={
        "csrf_token": csrf_from(html), "slug": "spring", "headline": "Spring guide",
        "form_id": "0", "asset_id": "0", "thank_you_headline": "Thanks!"})
    assert response.status_code == 422
    assert "Another landing page already uses this address. “spring-3” is free." in \
        response.get_data(as_text=True)

    new_campaign = client.get("/admin/campaigns/new").get_data(as_text=True)
    assert 'data-slug-from="name"' in re.search(r'<input[^>]*name="slug"[^>]*>',
                                                 new_campaign).group(0)

"""Landing pages as visitors and marketers see them."""

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event
from app.visitors import COOKIE
from tests.campaigns.helpers import make_form, make_page


def test_live_page_shows_headline_body_and_an_accessible_form(app, client):
    page = make_page(form=make_form())
    response = client.get("/p/guide")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>Get the guide</h1>" in html
    assert "<strong>this</strong>" in html
    assert '<label for="email">Work email</label>' in html
    assert 'name="csrf_token"' in html
    assert 'name="viewport"' in html
    assert COOKIE in response.headers["Set-Cookie"]
    (view,) = db.session.scalars(sa.select(Event).where(Event.type == "page_viewed")).all()
    assert view.lead_id is None and view.campaign_id == page.campaign_id
    assert view.visitor_id == client.get_cookie(COOKIE).value


def test_markdown_body_is_sanitised(app, client):
    make_page(form=make_form(), body=(
        "Hello <script>alert('x')</script> **bold**\n\n"
        "[click](javascript:alert(1)) <img src=x onerror=alert(2)>"))
    html = client.get("/p/guide").get_data(as_text=True)
    assert "<strong>bold</strong>" in html
    assert "alert(" not in html
    assert "onerror" not in html and "javascript:" not in html


def test_unknown_page_is_404(app, client):
    assert client.get("/p/nothing-here").status_code == 404


def test_draft_page_is_404_for_visitors_and_a_preview_for_marketers(app, client, auth):
    make_page(status="draft", form=make_form())
    assert client.get("/p/guide").status_code == 404

    auth.login_as("marketer")
    response = client.get("/p/guide")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Preview" in html and "Get the guide" in html
    # A marketer's preview is not a visitor's page view.
    assert db.session.scalars(sa.select(Event).where(Event.type == "page_viewed")).all() == []


def test_sales_users_do_not_get_draft_previews(app, client, auth):
    make_page(status="draft", form=make_form())
    auth.login_as("sales")
    assert client.get("/p/guide").status_code == 404


def test_archived_page_is_410_with_a_friendly_page(app, client):
    make_page(status="archived", form=make_form())
    response = client.get("/p/guide")
    assert response.status_code == 410
    assert "no longer available" in response.get_data(as_text=True)


def test_thank_you_address_cannot_be_forged(app, client):
    make_page(form=make_form())
    assert client.get("/p/guide/thanks/not-a-token").status_code == 404

"""The marketer's Tracking page."""

from datetime import timedelta

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import record_event
from tests.nurture.tracking.stories import flush, hit, make_send, path, tracked


def test_marketers_see_people_and_machines_with_reasons(app, client, auth):
    send = make_send()
    tracker, (url,) = tracked(send, "https://example.com/guide")
    hit(client, path(tracker.pixel_url()), ua="Mozilla/5.0", ip="17.58.101.4")
    hit(client, path(url))
    flush()
    auth.login_as("marketer")
    page = client.get("/admin/")
    assert 'href="/admin/tracking/"' in page.get_data(as_text=True)  # in the navigation
    body = client.get("/admin/tracking/").get_data(as_text=True)
    assert "Apple Mail privacy proxy" in body
    assert "implied by a human click" in body
    assert "Sending is running" in body


def test_sales_cannot_see_it(app, client, auth):
    auth.login_as("sales")
    assert client.get("/admin/tracking/").status_code == 403


def test_recent_opens_and_clicks_are_the_weeks_or_else_the_last_ones_written(app, client, auth):
    lead = db.session.get(Lead, make_send().lead_id)
    record_event(lead, "email_clicked", occurred_at=utcnow() - timedelta(days=40),
                 url="https://example.com/old-guide")
    db.session.commit()
    auth.login_as("marketer")
    body = client.get("/admin/tracking/").get_data(as_text=True)
    assert "https://example.com/old-guide" in body  # no open or click this week: the last ones

    record_event(lead, "email_clicked", occurred_at=utcnow() - timedelta(hours=2),
                 url="https://example.com/new-guide")
    db.session.commit()
    body = client.get("/admin/tracking/").get_data(as_text=True)
    assert "https://example.com/new-guide" in body
    assert "https://example.com/old-guide" not in body  # the week has some: only the week's

"""The marketer's Tracking page."""

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

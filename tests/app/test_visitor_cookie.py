"""The visitor cookie is Secure in production, where TLS often ends at a proxy and the app
itself is spoken to over http: a landing-page submit, a tracked click (both the fast path and
the view) and the visit pixel all mark it Secure."""

import pytest

from tests.campaigns.helpers import fill_and_submit, make_form, make_page
from tests.nurture.tracking.stories import hit, make_send, path, tracked


def _visitor_cookie(response) -> str:
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("kv=")]
    return cookie


@pytest.fixture
def production_cookies(app):
    app.config["SESSION_COOKIE_SECURE"] = True  # what KINDLING_ENV=production sets
    return app


def _submit(client):
    make_page(form=make_form())
    response = fill_and_submit(client, "guide", email="ann@example.com", first_name="Ann")
    assert response.status_code == 303
    return response


def test_the_landing_page_visitor_cookie_is_secure_in_production(production_cookies, client):
    assert "Secure" in _visitor_cookie(_submit(client))


@pytest.mark.parametrize("fast_path", [True, False])
def test_the_click_visitor_cookie_is_secure_in_production(production_cookies, client, fast_path):
    production_cookies.config["TRACKING_FAST_PATH"] = fast_path
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    response = hit(client, path(url))
    assert response.status_code == 302
    assert "Secure" in _visitor_cookie(response)


def test_the_visit_pixel_cookie_is_secure_in_production(production_cookies, client):
    response = client.get("/t/v.gif?u=https://www.example.com/pricing")
    assert "Secure" in _visitor_cookie(response)


def test_the_visitor_cookie_is_not_secure_over_plain_http_in_development(app, client):
    assert "Secure" not in _visitor_cookie(_submit(client))

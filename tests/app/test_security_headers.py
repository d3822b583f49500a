"""Security headers (issue 15, finding 13): admin pages carry a CSP without inline scripts and
are never stored by a cache; nothing can be framed by another site except the embed path; every
answer has nosniff and a Referrer-Policy; HSTS only when the app is served over https."""

import re

import pytest
from flask import url_for

from app.reports import charts
from tests.campaigns.helpers import make_form, make_page


def _csp(response) -> dict[str, str]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def _assert_admin_headers(response):
    csp = _csp(response)
    assert "'unsafe-inline'" not in csp["script-src"] and "'self'" in csp["script-src"]
    assert "'unsafe-inline'" not in csp.get("style-src", csp["default-src"])
    assert csp["frame-ancestors"] == "frame-ancestors 'self'"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_the_login_page_cannot_be_framed_or_cached(client):
    response = client.get("/login")
    assert response.status_code == 200
    _assert_admin_headers(response)


def test_every_admin_page_in_the_nav_has_the_admin_headers_and_no_inline_script(app, client,
                                                                                  auth):
    auth.login_as("admin")
    with app.test_request_context():
        urls = [url_for(endpoint) for endpoint, _, _ in app.extensions["admin_nav"]]
    assert len(urls) >= 8
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        _assert_admin_headers(response)
        html = response.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), url  # only external scripts
        assert not re.search(r"\s(on[a-z]+|style)\s*=", html), url  # no inline handlers/styles


def test_charts_carry_no_inline_style_the_admin_csp_would_block():
    svg = str(charts.hbar("c", "Leads by source", "Bars", [("ads", 3, "3"), ("seo", 1, "1")]))
    assert "style=" not in svg and 'width="560"' in svg


def test_a_landing_page_is_protected_but_keeps_its_own_caching(app, client):
    make_page(form=make_form())
    response = client.get("/p/guide")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Referrer-Policy" in response.headers
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert "Content-Security-Policy" not in response.headers  # marketer pages keep their styles


def test_the_embed_script_may_be_used_by_other_sites(app, client):
    form = make_form()
    response = client.get(f"/f/{form.key}/embed.js")
    assert response.status_code == 200
    assert "X-Frame-Options" not in response.headers
    assert "frame-ancestors" not in response.headers.get("Content-Security-Policy", "")
    assert response.headers["Cache-Control"].startswith("public")


@pytest.mark.parametrize(("base_url", "hsts"), [("https://go.example.com", True),
                                                ("http://kindling.test", False)])
def test_hsts_only_when_served_over_https(app, client, base_url, hsts):
    app.config["BASE_URL"] = base_url
    response = client.get("/login")
    assert ("Strict-Transport-Security" in response.headers) is hsts
    if hsts:
        assert "max-age=31536000" in response.headers["Strict-Transport-Security"]


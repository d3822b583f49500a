"""Landing pages are the same bytes for every anonymous visitor, so nginx or a CDN can serve
them; the form on them is protected by where the post comes from, not by a session."""

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from forms.models import Submission
from tests.campaigns.helpers import form_values, make_form, make_page


def _count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_two_fresh_visitors_get_the_same_bytes_without_a_cookie(app):
    make_page(form=make_form())
    first = app.test_client().get("/p/guide?utm_source=a", headers={"Referer": "https://x.example/"})
    second = app.test_client().get("/p/guide?utm_source=b")
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    for response in (first, second):
        assert "Set-Cookie" not in response.headers
        assert "Cookie" not in response.headers.get("Vary", "")
        assert response.headers["Cache-Control"] == "public, max-age=60"
    assert first.headers["ETag"] == second.headers["ETag"]
    html = first.get_data(as_text=True)
    assert "csrf_token" not in html and "x.example" not in html and "utm_source=a" not in html


def test_a_revalidation_answers_304_and_an_edit_changes_the_etag(app, client):
    page = make_page(form=make_form())
    etag = client.get("/p/guide").headers["ETag"]
    again = client.get("/p/guide", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    page.headline = "A better headline"
    db.session.commit()
    changed = client.get("/p/guide", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "A better headline" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag


def test_the_cache_lifetime_is_a_setting(app_config, make_app):
    app = make_app({**app_config, "LANDING_PAGE_CACHE_SECONDS": 300})
    with app.app_context():
        make_page(form=make_form())
        assert app.test_client().get("/p/guide").headers["Cache-Control"] == \
            "public, max-age=300"


def test_a_marketers_preview_of_a_draft_is_never_stored(app, client, auth):
    make_page(form=make_form(), status="draft")
    auth.login_as("marketer")
    response = client.get("/p/guide")
    assert response.status_code == 200 and "Preview." in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "private, no-store"


def test_a_cross_site_post_is_refused_with_a_clear_page(app):
    make_page(form=make_form())
    visitor = app.test_client()
    data = form_values(visitor.get("/p/guide").get_data(as_text=True))
    refused = visitor.post("/p/guide", data={**data, "email": "ann@example.com"},
                           headers={"Origin": "https://evil.example",
                                    "Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert "can only be sent from its own page" in refused.get_data(as_text=True)
    assert _count(Lead) == 0 and _count(Submission) == 0


def test_a_same_origin_post_with_no_cookie_at_all_is_accepted(app):
    make_page(form=make_form())
    data = form_values(app.test_client().get("/p/guide").get_data(as_text=True))
    fresh = app.test_client()  # never saw the page: no cookie of any kind
    accepted = fresh.post("/p/guide", data={**data, "email": "ann@example.com"},
                          headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert accepted.status_code == 303 and "/p/guide/thanks/" in accepted.headers["Location"]
    assert _count(Lead) == 1


def test_an_expired_copy_is_served_while_the_database_refuses(app_config, make_app,
                                                              monkeypatch):
    """Stale-if-error: a visitor can still read the page and submit during an outage (the
    submit then waits in the spill journal) however long the page has been cached."""
    import time

    from campaigns import pagecache

    app = make_app({**app_config, "LANDING_PAGE_CACHE_SECONDS": 0.01})
    with app.app_context():
        make_page(form=make_form())
        make_page(slug="other", campaign_slug="other", form=make_form("Other"))
        visitor = app.test_client()
        assert visitor.get("/p/guide").status_code == 200  # read once, then cached
        time.sleep(0.05)  # the copy has expired

        def refuse(session, slug):
            raise sa.exc.OperationalError("SELECT …", {}, ConnectionRefusedError("refused"))

        monkeypatch.setattr(pagecache, "load_page", refuse)
        stale = visitor.get("/p/guide")
        assert stale.status_code == 200 and "Get the guide" in stale.get_data(as_text=True)
        assert visitor.get("/p/other").status_code == 503  # never read: nothing to serve


def test_a_rendered_page_is_answered_before_flask_with_the_views_bytes_and_headers(app):
    """Once the view has rendered a live page, later views are answered by the WSGI fast path
    (no Flask request, no hook): the same body and headers, 304 to a matching ETag, HEAD."""
    make_page(form=make_form())
    hooks: list[str] = []
    app.before_request_funcs.setdefault(None, []).insert(0, lambda: hooks.append("flask"))
    visitor = app.test_client()
    by_view = visitor.get("/p/guide")
    assert hooks == ["flask"]  # the first view renders it
    fast = visitor.get("/p/guide")
    assert hooks == ["flask"]  # answered before Flask

    def without_date(response):
        return sorted((k, v) for k, v in response.headers.items() if k != "Date")

    assert fast.status_code == by_view.status_code == 200 and fast.data == by_view.data
    assert without_date(fast) == without_date(by_view) and "Date" in fast.headers
    head = visitor.head("/p/guide")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(by_view.data))
    etag = by_view.headers["ETag"]
    for sent in (etag, f'W/{etag}', f'"other", {etag}'):
        again = visitor.get("/p/guide", headers={"If-None-Match": sent})
        assert again.status_code == 304 and again.data == b""
        assert again.headers["ETag"] == etag and "Content-Type" not in again.headers
        assert again.headers["Cache-Control"] == "public, max-age=60"
        assert again.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert visitor.get("/p/guide", headers={"If-None-Match": '"other"'}).status_code == 200
    assert hooks == ["flask"]
    assert visitor.get("/p/guide/").status_code == 404 and visitor.get("/p/nope").status_code == 404

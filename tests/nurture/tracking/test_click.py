"""Tracked links: the redirect goes where the email pointed, never where a request says."""

import pytest

from app.db import db
from nurture.tracking import tokens
from nurture.tracking.models import SendLink, Visitor
from tests.nurture.tracking.stories import events, flush, hit, make_send, path, tracked


def test_prepare_rewrites_links_and_stores_them_with_the_send(app):
    send = make_send()
    tracker, urls = tracked(send, "https://example.com/guide", "mailto:ann@example.com",
                            "#top", "http://kindling.test/u/sometoken",
                            "https://example.com/guide", "https://example.com/pricing")
    guide, mailto, anchor, unsub, guide_again, pricing = urls
    assert guide.startswith("http://kindling.test/t/c/") and guide == guide_again
    assert (mailto, anchor, unsub) == ("mailto:ann@example.com", "#top",
                                       "http://kindling.test/u/sometoken")
    assert pricing != guide and "example.com" not in pricing
    rows = db.session.query(SendLink).filter_by(send_id=send.id).order_by(SendLink.index).all()
    assert [(r.index, r.url) for r in rows] == [(1, "https://example.com/guide"),
                                                (2, "https://example.com/pricing")]
    assert tracker.pixel_url().startswith("http://kindling.test/t/o/")
    assert tracker.honeypot_url().startswith("http://kindling.test/t/c/")
    # A re-render (a retried send) reuses the stored links instead of adding rows.
    _, again = tracked(send, "https://example.com/pricing", "https://example.com/new")
    assert again[0] == pricing
    assert db.session.query(SendLink).filter_by(send_id=send.id).count() == 3


def test_a_click_redirects_records_and_remembers_the_browser(app, client):
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide?x=1")
    response = hit(client, path(url))
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.com/guide?x=1"
    cookie = client.get_cookie("kv")
    assert cookie is not None
    assert flush() == 1
    (clicked,) = events("email_clicked")
    assert clicked.lead_id == send.lead_id and not clicked.is_bot
    assert clicked.url == "https://example.com/guide?x=1"
    assert clicked.data == {"link_index": 1} and clicked.send_id == send.id
    assert "url" not in clicked.data  # stored once, in its column
    assert db.session.get(Visitor, cookie.value).lead_id == send.lead_id


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-3] + "abc",  # tampered signature
    lambda t: t[:10],  # truncated
    lambda t: tokens.open_token(1),  # wrong purpose: a pixel token on the click path
    lambda t: "random-garbage.token",  # random
])
def test_bad_click_tokens_get_a_400_and_never_a_redirect(app, client, mangle):
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    token = url.rsplit("/", 1)[1]
    query = "?url=https://evil.example/&next=https://evil.example/"
    response = hit(client, f"/t/c/{mangle(token)}{query}")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "evil.example" not in response.get_data(as_text=True)
    flush()
    assert events("email_clicked") == []


def test_the_query_string_never_chooses_the_target(app, client):
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    response = hit(client, path(url) + "?url=https://evil.example/")
    assert response.headers["Location"] == "https://example.com/guide"


def test_a_signed_token_for_a_link_that_was_never_stored_is_not_found(app, client):
    send = make_send()
    response = hit(client, f"/t/c/{tokens.click_token(send.id, 7)}")
    assert response.status_code == 404 and "Location" not in response.headers

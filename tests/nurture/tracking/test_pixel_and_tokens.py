"""The open pixel: always the same tiny GIF, whatever the token; only real tokens count."""

import pytest

from nurture.tracking import tokens
from nurture.tracking.views import GIF
from tests.nurture.tracking.stories import events, flush, hit, make_send, path, tracked


def assert_gif(response):
    assert response.status_code == 200
    assert response.mimetype == "image/gif"
    assert response.data == GIF and len(response.data) == 43
    assert "no-store" in response.headers["Cache-Control"]
    assert "Location" not in response.headers


def test_an_open_is_recorded_for_the_sends_lead(app, client):
    send = make_send()
    tracker, _ = tracked(send)
    assert_gif(hit(client, path(tracker.pixel_url())))
    assert flush() == 1
    (opened,) = events("email_opened")
    assert opened.lead_id == send.lead_id and not opened.is_bot
    # Only what no join gives back (issue 14: each key is repeated in millions of rows): the
    # sequence is the step's, the source the type's.
    assert (opened.send_id, opened.step_id, opened.data) == (send.id, send.step_id, {})


def test_the_token_is_opaque_and_carries_no_address(app):
    send = make_send()
    token = tokens.open_token(send.id)
    assert "@" not in token and "example" not in token


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # tampered signature
    lambda t: t[: len(t) // 2],  # truncated
    lambda t: "x" + t,  # tampered payload
    lambda t: "not-a-token",  # random
    lambda t: tokens.click_token(1, 1),  # wrong purpose: a click token on the pixel path
])
def test_bad_tokens_get_the_same_gif_and_record_nothing(app, client, mangle):
    send = make_send()
    token = tokens.open_token(send.id)
    assert_gif(hit(client, f"/t/o/{mangle(token)}.gif"))
    assert_gif(hit(client, f"/t/o/{mangle(token)}"))
    flush()
    assert events("email_opened") == []


def test_each_purpose_has_its_own_salt(app, client):
    """A well-formed payload signed for the other purpose still counts for nothing."""
    from itsdangerous import URLSafeSerializer

    send = make_send()
    tracked(send, "https://example.com/guide")  # link 1 exists: only the salt stands in the way
    secret = app.config["SECRET_KEY"]
    as_click = URLSafeSerializer(secret, salt=tokens.CLICK_SALT).dumps(send.id)
    as_open = URLSafeSerializer(secret, salt=tokens.OPEN_SALT).dumps([send.id, 1])
    assert_gif(hit(client, f"/t/o/{as_click}.gif"))
    response = hit(client, f"/t/c/{as_open}")
    assert response.status_code == 400 and "Location" not in response.headers
    flush()
    assert events() == []

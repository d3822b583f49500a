"""The pixel and click fast path (in front of Flask) answers exactly as the views do, keeps
targets in Redis from the send's commit, and loses no hit when Redis drops a connection."""

import json

import pytest
import redis

from app import pushbuffer
from app.db import db
from nurture.models import Send, SendStatus
from nurture.tracking import buffer, links
from nurture.tracking.views import GIF
from tests.nurture.tracking.stories import (
    SendGridSigner,
    events,
    flush,
    hit,
    make_send,
    path,
    sg_event,
    tracked,
)

URL = "https://example.com/guide?a=1&b=<2>"


def _answer(response):
    headers = sorted((k, v) for k, v in response.headers.items()
                     if k not in ("Vary", "Set-Cookie"))  # Vary: Flask-Login touches the session
    cookie = response.headers.get("Set-Cookie", "")
    # the visitor id is random and Expires follows the clock: compare the other attributes
    attributes = sorted(a.strip() for a in cookie.split(";")[1:]
                        if not a.strip().startswith("Expires="))
    return response.status_code, headers, response.get_data(), bool(cookie), attributes


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_fast_path_answers_as_the_views_do(app, app_config, make_app, redis_conn, method):
    send = make_send()
    tracker, (url,) = tracked(send, URL)
    slow = make_app({**app_config, "TRACKING_FAST_PATH": False}).test_client()
    fast = app.test_client()
    for target in (path(tracker.pixel_url()), path(tracker.pixel_url()).replace(".gif", ""),
                   "/t/o/forged.gif", path(url), path(tracker.honeypot_url()), "/t/c/forged",
                   path(url) + "x"):
        assert _answer(hit(fast, target, method=method)) == \
            _answer(hit(slow, target, method=method)), target
    redirect = hit(fast, path(url))
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == "https://example.com/guide?a=1&b=%3C2%3E"
    assert hit(fast, path(tracker.pixel_url())).data == GIF
    flush()
    assert len(events("email_clicked")) == 5  # link and honeypot through each app, and one


def test_the_fast_click_keeps_the_visitor_cookie_and_honours_gpc(app, client, redis_conn):
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    client.set_cookie("kv", "a" * 24)
    kept = hit(client, path(url))
    assert kept.headers["Set-Cookie"].startswith("kv=" + "a" * 24)
    private = hit(client, path(url), headers={"Sec-GPC": "1"})
    assert private.status_code == 302 and "Set-Cookie" not in private.headers
    flush()
    clicks = events("email_clicked")
    assert [c.visitor_id for c in clicks] == ["a" * 24, None]
    assert all(c.url == "https://example.com/guide" for c in clicks)


def test_targets_reach_redis_when_the_send_commits_and_not_before(app, redis_conn):
    send = make_send()
    tracker = links.prepare(send)
    tracker.rewrite("https://example.com/rolled-back")
    db.session.rollback()
    assert not redis_conn.exists(links.redis_key(send.id))
    send = db.session.get(Send, send.id)
    tracker, (_url,) = tracked(send, "https://example.com/kept")
    assert redis_conn.hgetall(links.redis_key(send.id)) == {b"1": b"https://example.com/kept"}
    assert 0 < redis_conn.ttl(links.redis_key(send.id)) <= app.config["TRACKING_LINK_TTL"]


def test_a_target_missing_from_redis_is_read_once_and_put_back(app, client, redis_conn):
    import sqlalchemy as sa

    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    redis_conn.flushdb()  # expired, or sent before targets went to Redis
    assert hit(client, path(url)).headers["Location"] == "https://example.com/guide"
    assert redis_conn.hget(links.redis_key(send.id), "1") == b"https://example.com/guide"
    app.extensions["tracking_link_cache"] = links._LinkCache()  # a fresh worker process
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert hit(client, path(url)).status_code == 302
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert statements == []  # from Redis, not the database
    flush()
    assert len(events("email_clicked")) == 2


def test_an_unknown_link_of_a_valid_token_is_404_and_records_nothing(app, client, redis_conn):
    from nurture.tracking import tokens

    send = make_send()
    tracked(send, "https://example.com/guide")
    assert hit(client, f"/t/c/{tokens.click_token(send.id, 7)}").status_code == 404
    assert redis_conn.llen(buffer.KEY) == 0


def test_pushes_redis_never_acknowledged_are_sent_again_and_written_once(
        app, client, redis_conn, monkeypatch):
    monkeypatch.setattr(pushbuffer, "SETTLE_SECONDS", 30)  # the test reads the reply itself
    send = make_send()
    tracker, _ = tracked(send)
    hit(client, path(tracker.pixel_url()))
    memory = buffer.get(app)
    assert memory._pipe is not None and len(memory._pipe.in_flight) == 1

    def broken(*args, **kwargs):
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(memory._pipe.conn, "read_response", broken)  # the reply never comes
    assert memory.settle() is False
    assert len(memory.pending) == 1  # back in memory, handed to Redis again by the thread
    assert memory.flush()
    assert redis_conn.llen(buffer.KEY) == 2  # Redis had it already: a harmless replay
    flush()
    (opened,) = events("email_opened")
    assert opened.lead_id == send.lead_id


def test_every_push_is_in_redis_once_settled(app, client, redis_conn):
    send = make_send()
    tracker, (url,) = tracked(send, "https://example.com/guide")
    for _ in range(5):
        hit(client, path(tracker.pixel_url()))
        hit(client, path(url))
    assert buffer.get(app).settle() is True
    hits = [json.loads(v) for v in redis_conn.lrange(buffer.KEY, 0, -1)]
    assert [h["kind"] for h in hits] == ["open", "click"] * 5
    assert {h["url"] for h in hits if h["kind"] == "click"} == {"https://example.com/guide"}


def test_a_batch_settles_the_ledger_of_many_sends(app, client):
    signer = SendGridSigner()
    app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = signer.public_key
    sends = [make_send(status=SendStatus.UNKNOWN.value) for _ in range(3)]
    batch = [sg_event(s, name, f"ev-{s.id}-{name}") for s in sends
             for name in ("processed", "delivered")]
    assert signer.post(client, batch).status_code == 200
    db.session.expire_all()
    assert [db.session.get(Send, s.id).status for s in sends] == ["sent"] * 3

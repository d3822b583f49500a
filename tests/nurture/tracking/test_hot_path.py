"""Hits never wait on the database: Redis (or memory, when Redis is down) then the writer."""

import time

from app import queue
from app.schedule import periodic_jobs
from app.worker import run_worker
from nurture.tracking import buffer
from nurture.tracking.views import GIF
from tests.nurture.tracking.stories import events, flush, hit, make_send, path, tracked

DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_hits_wait_in_redis_until_the_writer_runs(app, client, redis_conn):
    send = make_send()
    tracker, (url,) = tracked(send, "https://example.com/guide")
    hit(client, path(tracker.pixel_url()))
    hit(client, path(url))
    assert redis_conn.llen(buffer.KEY) == 2
    assert events() == []  # nothing written by the request itself
    assert flush() == 2
    assert redis_conn.llen(buffer.KEY) == 0
    assert {e.type for e in events()} == {"email_opened", "email_clicked"}


def test_the_writer_runs_every_second_on_the_tracking_queue(app):
    (job,) = [p for p in periodic_jobs(app) if p.job == "nurture.tracking.jobs.flush"]
    assert job.interval <= 2 and job.queue == "tracking"


def test_the_batch_writer_in_a_real_worker(app, client, redis_conn):
    send = make_send()
    tracker, _ = tracked(send)
    lead_id = send.lead_id
    hit(client, path(tracker.pixel_url()))
    queue.enqueue("nurture.tracking.jobs.flush", queue="tracking")
    run_worker(["tracking"], burst=True)
    (opened,) = events("email_opened")
    assert opened.lead_id == lead_id
    assert redis_conn.llen(buffer.KEY) == 0


def test_redis_down_keeps_hits_in_memory_and_writes_them_when_it_returns(
        app_config, app, make_app, redis_conn):
    send = make_send()
    tracker, (url,) = tracked(send, "https://example.com/guide")
    down = make_app({**app_config, "REDIS_URL": DEAD_REDIS})
    client = down.test_client()

    started = time.monotonic()
    pixel = hit(client, path(tracker.pixel_url()))
    click = hit(client, path(url))
    assert time.monotonic() - started < 3  # short timeouts: the visitor is not held up
    assert pixel.data == GIF
    assert click.status_code == 302 and click.headers["Location"] == "https://example.com/guide"
    memory = buffer.get(down)
    assert len(memory.pending) == 2 and redis_conn.llen(buffer.KEY) == 0

    down.extensions["redis"] = app.extensions["redis"]  # Redis is back
    deadline = time.monotonic() + 5
    while memory.pending and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not memory.pending
    assert redis_conn.llen(buffer.KEY) == 2
    flush()
    (opened,) = events("email_opened")  # the click's implied open is not needed: it opened
    (clicked,) = events("email_clicked")
    assert opened.lead_id == clicked.lead_id == send.lead_id


def test_a_replayed_batch_writes_nothing_twice(app, client, redis_conn):
    send = make_send()
    tracker, _ = tracked(send)
    hit(client, path(tracker.pixel_url()))
    saved = redis_conn.lrange(buffer.KEY, 0, -1)
    flush()
    redis_conn.rpush(buffer.KEY, *saved)  # the writer died after commit, before trimming
    flush()
    assert len(events("email_opened")) == 1

"""Hits never wait on the database: Redis (or memory, when Redis is down) then the writer."""

import json
import os
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import redis
import time_machine

from app import pushbuffer, queue
from app.db import utcnow
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
    buffer.get(app).settle()  # pushes are not waited for: make sure Redis has it
    saved = redis_conn.lrange(buffer.KEY, 0, -1)
    flush()
    redis_conn.rpush(buffer.KEY, *saved)  # the writer died after commit, before trimming
    flush()
    assert len(events("email_opened")) == 1


def test_the_pixel_the_site_pixel_and_a_known_link_never_query_the_database(app, client):
    import sqlalchemy as sa

    from app.db import db

    send = make_send()
    tracker, (url,) = tracked(send, "https://example.com/guide")
    hit(client, path(url))  # the first click reads the stored link once; it is cached
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        hit(client, path(tracker.pixel_url()))
        hit(client, path(url))
        hit(client, "/t/v.gif?u=https://www.acme.example/pricing")
        hit(client, "/t/v.js")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert statements == []


class SlowRedis:
    """Down at first; once back, every push takes a while (a congested or distant Redis)."""

    def __init__(self) -> None:
        self.down = True
        self.items: list[bytes] = []
        self.pushing = threading.Event()

    def rpush(self, key, *values):
        if self.down:
            raise redis.ConnectionError("down")
        self.pushing.set()
        time.sleep(2.0)
        self.items.extend(values)
        return len(self.items)


def test_a_push_never_waits_while_the_backlog_is_handed_to_a_slow_redis(app, monkeypatch):
    monkeypatch.setattr(pushbuffer, "RETRY_SECONDS", 0.05)
    slow = SlowRedis()
    memory = pushbuffer.Buffer(SimpleNamespace(extensions={"redis": slow}, config=app.config),
                               buffer.KEY, buffer.SPILL_FOLDER, "tracking")
    assert memory.push({"id": "first"}) is False  # Redis down: kept in memory
    slow.down = False
    assert slow.pushing.wait(3)  # the retry thread is now inside a slow Redis call
    started = time.monotonic()
    assert memory.push({"id": "second"}) is False  # queued behind the backlog, in order
    assert time.monotonic() - started < 1.0  # well under the slow push's 2 s, on a busy machine too
    deadline = time.monotonic() + 10
    while memory.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [json.loads(v)["id"] for v in slow.items] == ["first", "second"]


def test_events_left_in_memory_at_exit_are_saved_and_written_later(
        app_config, app, make_app, redis_conn):
    send = make_send()
    tracker, _ = tracked(send)
    down = make_app({**app_config, "REDIS_URL": DEAD_REDIS})
    hit(down.test_client(), path(tracker.pixel_url()))
    memory = buffer.get(down)
    assert len(memory.pending) == 1
    memory.close()  # what the process does at exit (atexit) while Redis is still away
    assert not memory.pending
    spilled = os.listdir(buffer.spill_dir(down))
    assert len(spilled) == 1 and spilled[0].endswith(".jsonl")
    assert flush() == 1  # the writer hands the file back to Redis, then writes it
    assert os.listdir(buffer.spill_dir(down)) == []
    (opened,) = events("email_opened")
    assert opened.lead_id == send.lead_id


def test_tracked_human_activity_asks_scoring_at_once(app, client, redis_conn):
    from app import queue

    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    scoring = queue.get_queue("scoring")
    hit(client, path(url), ua="python-requests/2.32.3")  # a machine: nothing to score
    flush()
    assert scoring.count == 0
    with time_machine.travel(utcnow() + timedelta(minutes=5)):
        hit(client, path(url))
        flush()
    (job,) = scoring.jobs
    assert job.func_name == "nurture.scoring.jobs.score_lead" and job.args == (send.lead_id,)


def test_a_click_is_on_the_leads_timeline_within_five_seconds(app, client, auth, redis_conn):
    """The hit, one run of the periodic writer job in a real worker, then the lead page."""
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    lead_id = send.lead_id
    auth.login_as("marketer")
    started = time.monotonic()
    hit(client, path(url))
    queue.enqueue("nurture.tracking.jobs.flush", queue="tracking")
    run_worker(["tracking"], burst=True)
    page = client.get(f"/admin/leads/{lead_id}").get_data(as_text=True)
    assert time.monotonic() - started < 5
    assert "Clicked a link in an email" in page and "https://example.com/guide" in page

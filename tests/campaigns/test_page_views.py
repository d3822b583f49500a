"""Landing-page views are queued on Redis and written by a periodic batch writer: they still
reach the right timeline, machines are still flagged, nothing is lost or written twice; and the
per-process page cache never shows a visitor a page that this process has changed."""

import json
import os

import pytest
import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead
from app.visitors import COOKIE
from campaigns import pageviews
from tests.campaigns.helpers import (
    fill_and_submit,
    flush_page_views,
    make_form,
    make_page,
    view_page,
)

DEAD_REDIS = "redis://127.0.0.1:1/0"


def _views():
    db.session.expire_all()
    return db.session.scalars(sa.select(Event).where(Event.type == "page_viewed")
                              .order_by(Event.occurred_at, Event.id)).all()


def _queued_views():
    from app import queue

    assert pageviews.buffer().settle()  # every push acknowledged by Redis
    return queue.connection().lrange(pageviews.KEY, 0, -1)


def _lead(email):
    return db.session.scalar(sa.select(Lead).where(Lead.email == email))


def test_a_view_is_queued_not_written_in_the_request(app, client, redis_conn):
    page = make_page(form=make_form())
    assert view_page(client, "guide", "?utm_source=x").status_code == 200
    assert _views() == []
    (raw,) = _queued_views()
    hit = json.loads(raw)
    assert hit["page_id"] == page.id and hit["vid"] == client.get_cookie(COOKIE).value
    assert flush_page_views() == 1
    assert redis_conn.llen(pageviews.KEY) == 0
    (view,) = _views()
    assert view.campaign_id == page.campaign_id and view.data == {"landing_page_id": page.id}
    assert view.url == "http://localhost/p/guide?utm_source=x" and view.lead_id is None


def test_views_still_queued_at_submit_join_the_lead_whose_submit_followed_them(app, client):
    """Two people on one browser stay two leads: each view goes to the first submit after it,
    as the in-request join did, although the writer runs after both submits."""
    make_page(form=make_form())
    assert fill_and_submit(client, "guide", email="ann@example.com").status_code == 303
    assert fill_and_submit(client, "guide", email="bo@example.com").status_code == 303
    view_page(client, "guide")  # after both: anonymous until this browser submits again
    assert flush_page_views() == 3
    ann, bo = _lead("ann@example.com"), _lead("bo@example.com")
    assert [v.lead_id for v in _views()] == [ann.id, bo.id, None]


def test_views_written_before_the_submit_are_joined_by_the_submit(app, client):
    make_page(form=make_form())
    view_page(client, "guide")
    flush_page_views()
    assert [v.lead_id for v in _views()] == [None]
    assert fill_and_submit(client, "guide", email="ann@example.com").status_code == 303
    flush_page_views()
    ann = _lead("ann@example.com")
    assert [v.lead_id for v in _views()] == [ann.id, ann.id]


def test_a_replayed_batch_writes_nothing_twice(app, client, redis_conn):
    make_page(form=make_form())
    view_page(client, "guide")
    (raw,) = _queued_views()
    flush_page_views()
    redis_conn.rpush(pageviews.KEY, raw, b"not json")  # a crash before the trim replays it
    assert flush_page_views() == 2
    assert len(_views()) == 1 and redis_conn.llen(pageviews.KEY) == 0


def test_scanner_views_are_queued_as_machines_without_a_visitor(app, client):
    page = make_page(form=make_form())
    client.head("/t/v.gif", query_string={"u": "http://localhost/p/guide", "lp": page.id},
                headers={"User-Agent": "Mozilla/5.0 Safari/605.1.15"})
    flush_page_views()
    (view,) = _views()
    assert view.is_bot and view.bot_reason.startswith("HEAD request")
    assert view.visitor_id is None


def test_redis_down_the_page_shows_and_the_view_is_kept_until_it_is_written(
        app_config, app, make_app):
    make_page(form=make_form())
    down = make_app({**app_config, "REDIS_URL": DEAD_REDIS})
    visitor = down.test_client()
    assert view_page(visitor, "guide").status_code == 200
    assert view_page(visitor, "guide").status_code == 200  # answered from the cached render
    memory = pageviews.buffer(down)
    assert len(memory.pending) == 2  # waiting in the web process for Redis
    memory.close()  # what the process does at exit while Redis is still away
    assert not memory.pending and len(os.listdir(memory.spill_dir())) == 1
    assert flush_page_views() == 2  # the writer hands the file to Redis, then writes it
    assert os.listdir(memory.spill_dir()) == []
    views = _views()
    assert len(views) == 2 and not any(view.is_bot for view in views)
    assert {view.visitor_id for view in views} == {visitor.get_cookie(COOKIE).value}


def test_the_page_cache_forgets_a_page_this_process_changes(app, client):
    page = make_page(form=make_form())
    assert "Get the guide" in client.get("/p/guide").get_data(as_text=True)
    page.headline = "A better headline"
    db.session.commit()
    assert "A better headline" in client.get("/p/guide").get_data(as_text=True)
    page.campaign.status = "archived"
    db.session.commit()
    assert client.get("/p/guide").status_code == 410


def test_the_writer_is_a_periodic_job_a_worker_runs(app, client):
    from app import queue
    from app.schedule import periodic_jobs
    from app.worker import run_worker

    (job,) = [p for p in periodic_jobs(app) if p.job == "campaigns.jobs.flush_page_views"]
    make_page(form=make_form())
    view_page(client, "guide")
    queue.enqueue(job.job, queue=job.queue)
    run_worker(burst=True)
    assert len(_views()) == 1




def test_a_forged_beacon_for_a_page_that_does_not_exist_is_not_a_view(app, client):
    make_page(form=make_form())
    client.get("/t/v.gif", query_string={"u": "http://localhost/p/guide", "lp": "999999"})
    flush_page_views()
    assert _views() == []


def test_a_beacon_with_a_nul_character_does_not_stop_the_writer(app, client):
    """Anyone can send the beacon. A NUL in its address (PostgreSQL stores none) made the
    writer's batch fail on every run, and no landing page view was written any more."""
    page = make_page(form=make_form())
    client.get("/t/v.gif", query_string={"u": "http://localhost/p/guide?x=\x00",
                                         "lp": str(page.id)})
    client.get("/t/v.gif", query_string={"u": "http://localhost/p/guide", "lp": str(page.id)})
    assert flush_page_views() == 2
    assert [v.url for v in _views()] == ["http://localhost/p/guide?x=",
                                         "http://localhost/p/guide"]


def test_a_queued_item_the_database_refuses_is_dropped_and_the_rest_is_written(app, client,
                                                                                redis_conn):
    """Whatever the entry point, one item PostgreSQL can never store (here a NUL queued as it
    was before the beacon dropped it) must not hold back every view after it for good."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores a NUL: only PostgreSQL refuses the item")
    page = make_page(form=make_form())
    with app.test_request_context():
        pageviews.record(url="http://localhost/p/guide?x=\x00", campaign_id=page.campaign_id,
                         landing_page_id=page.id, visitor_id=None, bot_reason=None)
    assert view_page(client, "guide", "?utm_source=after").status_code == 200
    assert flush_page_views() == 2
    assert redis_conn.llen(pageviews.KEY) == 0
    assert [v.url for v in _views()] == ["http://localhost/p/guide?utm_source=after"]
    assert view_page(client, "guide", "?utm_source=later").status_code == 200
    assert flush_page_views() == 1 and len(_views()) == 2

"""Landing-page views are queued on Redis and written by a periodic batch writer: they still
reach the right timeline, machines are still flagged, nothing is lost or written twice; and the
per-process page cache never shows a visitor a page that this process has changed."""

import json
import os

import sqlalchemy as sa
from flask import g

from app.db import db
from app.leads.models import Event, Lead
from app.visitors import COOKIE
from campaigns import pageviews
from forms.models import Submission
from tests.campaigns.helpers import (
    fill_and_submit,
    flush_page_views,
    form_values,
    make_form,
    make_page,
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
    assert client.get("/p/guide?utm_source=x").status_code == 200
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
    client.get("/p/guide")  # after both: anonymous until this browser submits again
    assert flush_page_views() == 3
    ann, bo = _lead("ann@example.com"), _lead("bo@example.com")
    assert [v.lead_id for v in _views()] == [ann.id, bo.id, None]


def test_views_written_before_the_submit_are_joined_by_the_submit(app, client):
    make_page(form=make_form())
    client.get("/p/guide")
    flush_page_views()
    assert [v.lead_id for v in _views()] == [None]
    assert fill_and_submit(client, "guide", email="ann@example.com").status_code == 303
    flush_page_views()
    ann = _lead("ann@example.com")
    assert [v.lead_id for v in _views()] == [ann.id, ann.id]


def test_a_replayed_batch_writes_nothing_twice(app, client, redis_conn):
    make_page(form=make_form())
    client.get("/p/guide")
    (raw,) = _queued_views()
    flush_page_views()
    redis_conn.rpush(pageviews.KEY, raw, b"not json")  # a crash before the trim replays it
    assert flush_page_views() == 2
    assert len(_views()) == 1 and redis_conn.llen(pageviews.KEY) == 0


def test_scanner_views_are_queued_as_machines_without_a_visitor(app, client):
    make_page(form=make_form())
    client.head("/p/guide", headers={"User-Agent": "Mozilla/5.0 Safari/605.1.15"})
    flush_page_views()
    (view,) = _views()
    assert view.is_bot and view.bot_reason.startswith("HEAD request")
    assert view.visitor_id is None


def test_redis_down_the_page_shows_and_the_view_is_kept_until_it_is_written(
        app_config, app, make_app):
    make_page(form=make_form())
    down = make_app({**app_config, "REDIS_URL": DEAD_REDIS})
    visitor = down.test_client()
    assert visitor.get("/p/guide").status_code == 200
    assert visitor.get("/p/guide").status_code == 200  # answered from the cut page
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


def test_fresh_renders_carry_each_request_s_own_escaped_values(app, client):
    make_page(form=make_form())
    first = client.get('/p/guide?utm_source="><script>x</script>').get_data(as_text=True)
    second = client.get("/p/guide?utm_source=newsletter&gclid=g1").get_data(as_text=True)
    assert "<script>x" not in first
    assert 'name="utm_source" type="hidden" value="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in first
    assert 'name="utm_source" type="hidden" value="newsletter"' in second
    assert 'name="gclid" type="hidden" value="g1"' in second
    assert 'name="gclid" type="hidden" value=""' in first


def test_the_writer_is_a_periodic_job_a_worker_runs(app, client):
    from app import queue
    from app.schedule import periodic_jobs
    from app.worker import run_worker

    (job,) = [p for p in periodic_jobs(app) if p.job == "campaigns.jobs.flush_page_views"]
    make_page(form=make_form())
    client.get("/p/guide")
    queue.enqueue(job.job, queue=job.queue)
    run_worker(burst=True)
    assert len(_views()) == 1


def test_a_view_from_the_cut_page_gives_each_browser_a_form_of_its_own_that_submits(app, client):
    make_page(form=make_form())
    mine = form_values(client.get("/p/guide").get_data(as_text=True))  # renders and cuts it
    # This test's app context outlives its requests (in production each request has its own),
    # and Flask-WTF keeps a request's token in `g`: forget it, as a new request would.
    g.pop("csrf_token", None)
    other = app.test_client()
    theirs = form_values(other.get("/p/guide?utm_source=ads").get_data(as_text=True))
    assert theirs["csrf_token"] and theirs["csrf_token"] != mine["csrf_token"]
    assert theirs["utm_source"] == "ads" and mine["utm_source"] == ""
    # One browser's token is refused in the other; its own goes through to a lead.
    assert client.post("/p/guide", data={**theirs, "email": "ann@example.com"}).status_code == 400
    assert _lead("ann@example.com") is None
    assert other.post("/p/guide", data={**theirs, "email": "ann@example.com"}).status_code == 303
    (submission,) = db.session.scalars(sa.select(Submission)).all()
    assert submission.lead == _lead("ann@example.com") and submission.utm["utm_source"] == "ads"
    assert len(_queued_views()) == 2


def test_a_message_waiting_for_the_visitor_is_shown_on_the_page(app, client):
    make_page(form=make_form())
    client.get("/p/guide")  # the cut is made
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Thanks, you are subscribed.")]
    html = client.get("/p/guide").get_data(as_text=True)
    assert "Thanks, you are subscribed." in html and 'name="csrf_token"' in html
    assert "Thanks, you are subscribed." not in client.get("/p/guide").get_data(as_text=True)

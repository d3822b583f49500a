"""A Redis that accepts connections and never answers (issue 15, finding 6). Before, each Redis
step of a form post (the rate limiter's storage, the enqueue) waited out its timeouts and
redis-py's retries in turn: 6–17 s per visitor. Now the first failed step opens a breaker: the
rest of that request and the next ones do not talk to Redis at all (the rate limiter counts in
memory, the outbox relay enqueues later), and no submission is lost."""

from __future__ import annotations

import sqlalchemy as sa
from flask.testing import FlaskClient

from app.config import defaults
from app.db import db
from app.leads.models import Lead
from app.redisguard import Breaker
from forms import processor
from tests.campaigns.helpers import fill_and_submit, make_form, make_page
from tests.faults.invariants import assert_holds, no_enrollment_stuck, submissions_once
from tests.faults.ports import in_thread, silent_server

PRODUCTION_BUDGET = {name: defaults("/tmp/unused")[name]
                     for name in ("REDIS_WEB_CONNECT_TIMEOUT", "REDIS_WEB_SOCKET_TIMEOUT")}


def test_a_silent_redis_is_tried_once_then_skipped_and_no_lead_is_lost(app_config, make_app):
    with silent_server() as redis_server:
        url = f"redis://127.0.0.1:{redis_server.port}/0"
        config = {k: v for k, v in app_config.items() if k != "RATELIMIT_STORAGE_URI"}
        app = make_app({**config, **PRODUCTION_BUDGET,
                        "REDIS_URL": url,  # the limiter counts in that Redis too
                        "RATELIMIT_ENABLED": True, "FORM_RATE_LIMIT": "3 per minute",
                        "REDIS_BREAKER_SECONDS": 120})
        with app.app_context():
            make_page(form=make_form())
            client = FlaskClient(app)  # the request path alone; the worker's part comes after

            def submit(n: int):
                return in_thread(lambda: fill_and_submit(client, "guide",
                                                         email=f"v{n}@example.com"),
                                 f"form post {n}")

            first = submit(1)
            tried = redis_server.connections
            answers = [first] + [submit(n) for n in (2, 3, 4)]
            # Later requests did not open a single connection to the sick Redis.
            assert redis_server.connections == tried

            assert [a.status_code for a in answers[:3]] == [303, 303, 303]
            # The rate limit still holds, counted in memory meanwhile.
            assert answers[3].status_code == 429
            processor.drain()  # the worker's run (its own Redis client; it may wait)
            db.session.expire_all()
            emails = set(db.session.scalars(sa.select(Lead.email)))
            assert emails == {"v1@example.com", "v2@example.com", "v3@example.com"}
            assert_holds(submissions_once(emails, instance_path=app.config["INSTANCE_PATH"]),
                         no_enrollment_stuck())


def test_the_request_path_budget_is_about_a_quarter_second():
    assert sum(PRODUCTION_BUDGET.values()) <= 0.25


def test_the_breaker_closes_after_its_time_and_on_success():
    breaker = Breaker(60)
    assert not breaker.is_open()
    breaker.trip(TimeoutError("silent"))
    assert breaker.is_open()
    breaker.succeed()
    breaker.open_until = 0  # its time has passed
    assert not breaker.is_open()
    assert breaker.failures == 0

"""The whole journey end to end, over real HTTP, with real processes: the app served on loopback,
a real `flask worker` and a real `flask scheduler` (the tick, the tracking flush and the outbox
relay on RQ's cron), and the loopback fake SendGrid the `sendgrid` client posts to.

A visitor submits the landing page's form → the submission listener enrolls her → email 1
reaches SendGrid with no scheduler running (the submit alone gets it out; its latency is a
benchmark figure, not asserted here) → the wait
passes → she clicks the tracked link (a person: a browser's user agent, after the machine
window) → the branch sends email 2 → she becomes an MQL → the goal ends the journey. A second
visitor who never clicks gets email 1 only.
"""

from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa

from app import outbox
from app.db import db
from app.leads.models import Event, Lead
from app.leads.service import change_stage
from nurture.models import Enrollment, Send, StepKind
from nurture.steps import activate
from tests.campaigns.helpers import form_values, make_form, make_page
from tests.e2e.conftest import LiveServer
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.nurture.factories import email_step, make_sequence, wait_step
from tests.nurture.worker_process import WorkerProcess, process_config, wait_for, worker_env

pytestmark = pytest.mark.slow

WAIT_SECONDS = 20  # the click must be flushed to the database before the branch, under load too
# Every periodic job each second, so the journey fits in a test; the worker and scheduler
# processes read these from the instance folder's kindling.cfg.
FAST = {"NURTURE_TICK_INTERVAL": 1, "TRACKING_FLUSH_INTERVAL": 1,
        "NURTURE_GOAL_RECHECK_SECONDS": 1, "OUTBOX_RELAY_AFTER_SECONDS": 2}
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")


@pytest.fixture
def sendgrid():
    server = FakeSendGrid().start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, sendgrid):
    return process_config(app_config, FAST, sendgrid.url)


@pytest.fixture
def processes():
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.kill()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Visitor:
    """A browser without JavaScript: cookies, its user agent, redirects not followed."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect())
        self.opener.addheaders = [("User-Agent", BROWSER)]

    def request(self, url: str, data: dict[str, str] | None = None) -> tuple[int, dict, str]:
        url = url if url.startswith("http") else self.base + url
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(url, body, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:  # 3xx (not followed) and errors
            return exc.code, dict(exc.headers), exc.read().decode(errors="replace")

    def submit(self, slug: str, **values: str) -> int:
        status, _, html = self.request(f"/p/{slug}")
        assert status == 200, status
        return self.request(f"/p/{slug}", {**form_values(html), **values})[0]


def _fresh() -> None:
    db.session.commit()  # end the read transaction: see what the other processes wrote
    db.session.expire_all()


def _mails_to(fake: FakeSendGrid, address: str) -> list:
    return [r for r in fake.mail_sends
            if r.json["personalizations"][0]["to"][0]["email"] == address]


def _enrollment(email: str) -> Enrollment | None:
    _fresh()
    return db.session.scalar(sa.select(Enrollment).join(Lead, Lead.id == Enrollment.lead_id)
                             .where(Lead.email == email))


def test_form_submit_to_goal_over_http_with_real_worker_and_scheduler(app, app_config, sendgrid,
                                                                      make_app, processes,
                                                                      tmp_path):
    form = make_form()
    make_page(slug="guide", form=form)
    sequence = make_sequence(
        email_step(subject="Your guide, {{ lead.first_name }}",
                   body="Hi {{ lead.first_name }}, [read it](https://example.com/guide)."),
        wait_step(WAIT_SECONDS),
        {"kind": StepKind.BRANCH, "condition": "clicked_previous"},
        email_step(subject="A quick call?", body="Shall we talk, {{ lead.first_name }}?"),
        {"kind": StepKind.GOAL, "goal_stages": ["mql"], "wait_seconds": 3600},
        name="Guide follow-up", trigger_form_id=form.id, active=False)
    _, _, branch, second, goal = sequence.steps
    branch.yes_step_id, branch.no_step_id = second.id, goal.id
    assert activate(sequence) == []
    db.session.commit()
    goal_id, branch_id = goal.id, branch.id

    server_app = make_app(app_config)
    with LiveServer(server_app) as server:
        server_app.config["BASE_URL"] = server.url
        env = worker_env(app_config, BASE_URL=server.url)
        worker = WorkerProcess(env, tmp_path / "worker.log")
        processes.append(worker)
        wait_for(lambda: "Listening on" in worker.log(), 60, "the worker to start", 0.2)

        # 1. The form submit; the first email reaches SendGrid. No scheduler
        #    runs yet: no tick, no relay. The submit alone gets the first email out.
        dana = Visitor(server.url)
        assert dana.submit("guide", email="dana@example.com", first_name="Dana") == 303
        wait_for(lambda: _mails_to(sendgrid, "dana@example.com"), 30, "Dana's first email", 0.05)
        first_seen = time.monotonic()
        enrollment = _enrollment("dana@example.com")
        assert enrollment.sequence_id == sequence.id
        assert enrollment.source.startswith("form submission")

        eve = Visitor(server.url)  # submits too, and never clicks
        assert eve.submit("guide", email="eve@example.com", first_name="Eve") == 303
        # From now on the periodic jobs run too: the tick (waits, goals), the tracking flush.
        processes.append(WorkerProcess(env, tmp_path / "scheduler.log", command="scheduler"))

        (first,) = _mails_to(sendgrid, "dana@example.com")
        assert first.json["subject"] == "Your guide, Dana"
        html = first.json["content"][1]["value"]
        (link,) = re.findall(r'href="([^"]+)"[^>]*>read it</a>', html)
        assert link.startswith(f"{server.url}/t/c/")

        # 2. Dana clicks, as a person would: after the machine window, from a browser.
        time.sleep(max(0.0, 2.5 - (time.monotonic() - first_seen)))
        status, headers, _ = dana.request(link)
        assert status == 302 and headers["Location"] == "https://example.com/guide"

        def human_click() -> bool:
            _fresh()
            return db.session.scalar(sa.select(Event.id).where(
                Event.type == "email_clicked", Event.is_bot.is_(False))) is not None

        wait_for(human_click, WAIT_SECONDS - 3, "the click to reach the database", 0.2)
        assert _enrollment("dana@example.com").step_id == branch_id  # still waiting: no race

        # 3. The wait passes; the branch sees the click and sends email 2 (to Dana only).
        wait_for(lambda: len(_mails_to(sendgrid, "dana@example.com")) == 2, WAIT_SECONDS + 30,
                 "Dana's second email", 0.2)
        assert [r.json["subject"] for r in _mails_to(sendgrid, "dana@example.com")] \
            == ["Your guide, Dana", "A quick call?"]
        wait_for(lambda: _enrollment("eve@example.com").step_id == goal_id, WAIT_SECONDS + 30,
                 "Eve to reach the goal step", 0.2)
        wait_for(lambda: _enrollment("dana@example.com").step_id == goal_id, 30,
                 "Dana to reach the goal step", 0.2)
        assert _enrollment("dana@example.com").status == "active"  # waiting for the goal

        # 4. Dana becomes an MQL: the goal ends her journey.
        change_stage(db.session.scalar(sa.select(Lead).where(Lead.email == "dana@example.com")),
                     "mql", reason="score reached 60")
        db.session.commit()
        outbox.dispatch_committed()  # what a request's teardown does

        def finished() -> bool:
            return _enrollment("dana@example.com").status == "finished"

        wait_for(finished, 30, "Dana's journey to end", 0.2)
        assert _enrollment("dana@example.com").exit_reason == "goal reached: mql"

    assert len(_mails_to(sendgrid, "dana@example.com")) == 2
    assert [r.json["subject"] for r in _mails_to(sendgrid, "eve@example.com")] \
        == ["Your guide, Eve"]
    eve_enrollment = _enrollment("eve@example.com")
    assert eve_enrollment.status == "active" and eve_enrollment.step_id == goal_id
    assert sorted(s.status for s in db.session.scalars(sa.select(Send))) == ["sent"] * 3

"""A chunk of steps run in-process (`nurture.jobs.run_steps`): the lean path sends the common
email step with everything a single step records, and leaves every other case to run_step."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.event_columns import digest_hex
from app.leads.models import Lead
from app.queue import get_queue
from nurture import chunk, jobs
from nurture.enrollment import enroll
from nurture.models import Enrollment, Send
from nurture.scoring.incremental import pending_key
from nurture.suppression import suppress
from nurture.tracking.links import redis_key
from nurture.tracking.models import SendLink
from tests.helpers import outbox_files
from tests.nurture.factories import (
    email_step,
    enrollment_of,
    events,
    make_lead,
    make_sequence,
    sends,
    wait_step,
)


def _enroll(lead, sequence) -> Enrollment:
    enrollment = enroll(lead.id, sequence.id, "test")
    db.session.commit()
    return enrollment


def _run(*enrollments: Enrollment) -> dict[str, str]:
    pairs = [[e.id, e.step_id] for e in enrollments]
    db.session.commit()
    outcomes = jobs.run_steps(pairs)
    db.session.expire_all()
    return outcomes


def test_a_chunk_sends_its_email_steps_and_leaves_the_rest_to_run_step(app):
    one_email = make_sequence()
    waits_first = make_sequence(wait_step(3600), email_step(), name="Waits")
    ann, bob, cat = make_lead("ann@example.com"), make_lead("bob@example.com"), \
        make_lead("cat@example.com")
    sending, waiting, gone = _enroll(ann, one_email), _enroll(bob, waits_first), \
        _enroll(cat, one_email)
    suppress("cat@example.com", "spamreport", "webhook")  # the journey itself is still live
    keys = [f"{e.id}:{e.step_id}" for e in (sending, waiting, gone)]

    outcomes = _run(sending, waiting, gone)

    assert outcomes == dict(zip(keys, ["sent", "waiting", "ended: suppressed (spamreport)"]))
    (eml,) = outbox_files()
    assert "Subject: Hello Ann" in eml.read_text()
    (send,) = sends()
    assert (send.lead_id, send.status, send.attempts) == (ann.id, "sent", 1)
    assert send.provider_message_id and send.sent_at
    (event,) = events(ann.id, "email_sent")
    # The send and its step in their integer columns, shown in the data as before.
    assert (event.send_id, event.step_id) == (send.id, send.step_id)
    assert event.data == {"enrollment_id": str(sending.id), "sequence_id": one_email.id,
                          "subject": "Hello {{ lead.first_name }}"}
    assert event.details == {"send_id": str(send.id), "enrollment_id": str(sending.id),
                             "sequence_id": one_email.id, "step_id": send.step_id,
                             "subject": "Hello {{ lead.first_name }}"}
    assert event.dedupe_key == digest_hex(f"nurture-send:{send.id}")  # stored as its digest
    (finished,) = events(ann.id, "nurture_finished")
    assert finished.data["reason"] == "completed every step"
    done = enrollment_of(ann.id)
    assert (done.status, done.exit_reason, done.next_run_at) == \
        ("finished", "completed every step", None)
    assert enrollment_of(bob.id).step_id == waits_first.steps[1].id
    assert enrollment_of(cat.id).exit_reason == "suppressed (spamreport)"


def test_a_stale_step_is_not_sent(app):
    enrollment = _enroll(make_lead(), make_sequence(email_step(), email_step(subject="Two")))
    outcomes = jobs.run_steps([[enrollment.id, enrollment.step_id + 1]])  # not its step
    assert list(outcomes.values()) == ["stale"]
    assert outbox_files() == [] and sends() == []


def test_the_next_step_due_now_is_kicked_once_the_chunk_is_done(app):
    sequence = make_sequence(email_step(subject="One"), email_step(subject="Two"))
    enrollment = _enroll(make_lead(), sequence)
    get_queue("mail").empty()

    assert list(_run(enrollment).values()) == ["sent"]

    assert enrollment_of(enrollment.lead_id).step_id == sequence.steps[1].id
    (job,) = get_queue("mail").get_jobs()  # claimed and enqueued, as engine.advance does
    assert job.func_name == "nurture.jobs.run_steps"
    assert job.args[0] == [[enrollment.id, sequence.steps[1].id]]


def test_links_are_tracked_and_published_and_scoring_hears_of_the_send(app, redis_conn):
    lead = make_lead()
    enrollment = _enroll(lead, make_sequence())
    get_queue("scoring").empty()  # the enrollment's own event asked for a job already
    redis_conn.delete(pending_key(lead.id))

    _run(enrollment)

    (send,) = sends()
    (link,) = db.session.scalars(sa.select(SendLink).where(SendLink.send_id == send.id)).all()
    assert link.url == "https://example.com/guide"
    assert redis_conn.hget(redis_key(send.id), str(link.index)) == b"https://example.com/guide"
    html = outbox_files()[0].read_text()
    assert "http://kindling.test/t/c/" in html and "https://example.com/guide" not in html
    scoring = get_queue("scoring").get_jobs()
    assert [job.args for job in scoring] == [(lead.id,)]


def test_a_bounce_after_the_chunk_was_read_still_stops_the_email(app, monkeypatch):
    lead = make_lead()
    enrollment = _enroll(lead, make_sequence())
    real_plan = chunk.plan

    def plan_then_bounce(work):
        planned = real_plan(work)
        with app.app_context():  # another request, another session
            db.session.get(Lead, lead.id).bounced_at = utcnow()
            db.session.commit()
        return planned

    monkeypatch.setattr(chunk, "plan", plan_then_bounce)
    assert list(_run(enrollment).values()) == ["ended: bounced"]
    assert outbox_files() == [] and sends() == []
    assert enrollment_of(lead.id).exit_reason == "bounced"


def test_the_frequency_cap_postpones_a_chunk_step(app):
    lead = make_lead()
    first = _enroll(lead, make_sequence(email_step(subject="First"), name="First"))
    second = _enroll(lead, make_sequence(email_step(subject="Second"), name="Second",
                                         frequency_cap_hours=24))
    assert list(_run(first).values()) == ["sent"]

    (outcome,) = _run(second).values()

    assert outcome.startswith("postponed (frequency cap)")
    assert len(outbox_files()) == 1
    held = db.session.get(Enrollment, second.id)
    assert held.next_run_at > utcnow() + timedelta(hours=23)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Send)) == 1


def test_a_template_that_fails_for_this_lead_is_recorded_as_failed(app):
    lead = make_lead(divisor=0)  # an attribute the template divides by
    enrollment = _enroll(lead, make_sequence(email_step(
        body="Share: {{ 10 / lead.attributes.get('divisor', 1) }}")))

    (outcome,) = _run(enrollment).values()

    assert outcome == "failed: journey continues"
    (send,) = sends()
    assert send.status == "failed" and send.error.startswith("template: ZeroDivisionError")
    assert outbox_files() == []


class TimedOut(Exception):
    """Stands in for RQ's JobTimeoutException, raised in the job's (main) thread by SIGALRM."""


def test_a_chunk_that_runs_out_of_time_takes_no_new_steps_after_the_timeout(app, monkeypatch):
    """With in-process jobs the worker moves on after a timeout: lanes that kept taking steps
    would go on sending emails in the background of the next job. The step in hand finishes
    (its ledger row is committed); the others keep their claim lease for the tick."""
    import signal
    import threading
    import time

    taken: list[int] = []

    def slow_step(self, enrollment_id, step_id, planned):
        taken.append(enrollment_id)
        time.sleep(0.2)
        return "sent"

    monkeypatch.setattr(chunk, "plan", lambda work: [None] * len(work))
    monkeypatch.setattr(chunk, "send_threads", lambda app, count: 2)
    monkeypatch.setattr(chunk._Lane, "_step", slow_step)

    def time_out(signum, frame):
        raise TimedOut()

    previous = signal.signal(signal.SIGALRM, time_out)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        try:
            chunk.run(app, [(n, 1) for n in range(40)])
        except TimedOut:
            pass
        else:
            raise AssertionError("the timeout did not reach the job")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    for thread in threading.enumerate():
        if thread.name.startswith("nurture-lane-"):
            thread.join(10)
    assert len(taken) <= 6, f"{len(taken)} of 40 steps were taken after a 0.3 s timeout"


def test_rqs_timeout_stops_a_one_lane_chunk_at_once(app, monkeypatch):
    """One lane runs in the job's own thread, where RQ raises its JobTimeoutException: the
    chunk ends there instead of taking it for one step's failure and running every step left."""
    from rq.timeouts import JobTimeoutException

    tried: list[int] = []

    def out_of_time(enrollment_id, step_id):
        tried.append(enrollment_id)
        raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")

    monkeypatch.setattr(chunk, "plan", lambda work: [None] * len(work))
    monkeypatch.setattr(chunk, "send_threads", lambda app, count: 1)
    monkeypatch.setattr(chunk.engine, "run_step", out_of_time)
    with pytest.raises(JobTimeoutException):
        chunk.run(app, [(n, 1) for n in range(5)])
    assert tried == [0]

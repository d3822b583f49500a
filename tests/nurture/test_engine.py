"""The engine with real workers: each step once, on time, and nothing lost or doubled when
Redis forgets or RQ delivers twice."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import time_machine

from app import queue
from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import change_stage
from nurture import engine, ledger
from nurture.enrollment import enroll
from nurture.models import Enrollment
from nurture.unsubscribe import unsubscribe
from tests.helpers import outbox_files
from tests.nurture.factories import (
    drain,
    email_step,
    enrollment_of,
    events,
    make_lead,
    make_sequence,
    sends,
    wait_step,
    work,
)


def _enroll(lead, sequence) -> int:
    enrollment = enroll(lead.id, sequence.id, "test")
    db.session.commit()
    return enrollment.id


def test_an_enrolled_lead_gets_the_first_email_at_once(app):
    lead, sequence = make_lead(), make_sequence()
    enrollment_id = _enroll(lead, sequence)
    assert engine.kick([enrollment_id]) == 1  # no waiting for the tick
    drain()

    (eml,) = outbox_files()
    assert "Subject: Hello Ann" in eml.read_text()
    (send,) = sends()
    assert send.status == "sent" and send.attempts == 1 and send.provider_message_id
    (event,) = events(lead.id, "email_sent")
    assert event.send_id == send.id
    enrollment = enrollment_of(lead.id)
    assert enrollment.status == "finished" and enrollment.exit_reason == "completed every step"


def test_a_redelivered_run_step_sends_once(app):
    lead, sequence = make_lead(), make_sequence()
    enrollment_id = _enroll(lead, sequence)
    step_id = sequence.steps[0].id
    for _ in range(3):  # RQ delivers at least once; a second worker may get a copy
        queue.enqueue("nurture.jobs.run_step", enrollment_id, step_id, queue="mail")
    drain()
    engine.run_step(enrollment_id, step_id)
    assert len(outbox_files()) == 1
    assert [s.status for s in sends()] == ["sent"]


def test_a_flushed_redis_is_recovered_from_the_database(app, redis_conn):
    lead = make_lead()
    sequence = make_sequence(email_step(subject="One"), wait_step(86400), email_step(subject="Two"))
    engine.kick([_enroll(lead, sequence)])
    drain()
    assert len(outbox_files()) == 1

    with time_machine.travel(utcnow() + timedelta(days=1, seconds=5)):
        assert engine.tick() == 1  # step two is due and enqueued...
        redis_conn.flushdb()  # ...and Redis forgets it
        drain()
        assert len(outbox_files()) == 1
        assert engine.tick() == 0  # claimed: the lease has not run out
    with time_machine.travel(utcnow() + timedelta(days=1, minutes=6)):
        assert engine.tick() == 1  # the database still says it is due
        drain()
        work()
    subjects = sorted(p.read_text().split("Subject: ")[1].split("\n")[0].strip()
                      for p in outbox_files())
    assert subjects == ["One", "Two"]
    assert [s.status for s in sends()] == ["sent", "sent"]
    assert enrollment_of(lead.id).status == "finished"


def test_an_unsubscribe_after_the_step_was_enqueued_stops_the_email(app):
    lead, sequence = make_lead(), make_sequence()
    engine.kick([_enroll(lead, sequence)])  # the job waits in the queue...
    unsubscribe(db.session.get(Lead, lead.id), source="test")  # ...when the lead unsubscribes
    db.session.commit()
    drain()
    assert outbox_files() == []
    assert sends() == []
    enrollment = enrollment_of(lead.id)
    assert enrollment.status == "exited" and enrollment.exit_reason == "unsubscribed"


def test_suppression_is_checked_again_after_the_ledger_claim(app, monkeypatch):
    """The lead unsubscribes between the claim and the send: the claim is recorded, no email."""
    lead, sequence = make_lead(), make_sequence()
    enrollment_id = _enroll(lead, sequence)
    real_claim = ledger.claim

    def claim_then_unsubscribe(enrollment, step):
        result = real_claim(enrollment, step)
        with app.app_context():  # another request, another session
            unsubscribe(db.session.get(Lead, lead.id), source="test")
            db.session.commit()
        return result

    monkeypatch.setattr(ledger, "claim", claim_then_unsubscribe)
    engine.run_step(enrollment_id, sequence.steps[0].id)
    assert outbox_files() == []
    (send,) = sends()
    assert send.status == "failed" and send.error == "not sent: unsubscribed"


def test_waits_are_kept(app):
    lead = make_lead()
    sequence = make_sequence(email_step(), wait_step(2 * 86400), email_step(subject="Later"))
    start = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        engine.kick([_enroll(lead, sequence)])
        drain()
    assert len(outbox_files()) == 1
    with time_machine.travel(start + timedelta(days=1, hours=23), tick=False):
        work()
    assert len(outbox_files()) == 1
    with time_machine.travel(start + timedelta(days=2, seconds=1), tick=False):
        work()
    assert len(outbox_files()) == 2


def test_wait_until_next_weekday_in_the_leads_time_zone(app):
    lead = make_lead(timezone="America/New_York")
    sequence = make_sequence(wait_step(until="next monday 09:00"), email_step())
    wednesday = datetime(2030, 3, 6, 12, 0, tzinfo=UTC)
    with time_machine.travel(wednesday, tick=False):
        engine.kick([_enroll(lead, sequence)])
        drain()
    # Monday 11 March 2030, 09:00 in New York (EDT from 10 March) is 13:00 UTC
    assert enrollment_of(lead.id).next_run_at == datetime(2030, 3, 11, 13, 0, tzinfo=UTC)
    assert outbox_files() == []


def test_outside_the_send_window_the_email_waits_for_the_next_opening(app):
    lead = make_lead(country="GB")
    sequence = make_sequence(window_days=[0, 1, 2, 3, 4], window_start_hour=9,
                             window_end_hour=17, timezone="America/Los_Angeles")
    saturday = datetime(2030, 1, 5, 10, 0, tzinfo=UTC)
    with time_machine.travel(saturday, tick=False):
        engine.kick([_enroll(lead, sequence)])
        drain()
    assert outbox_files() == [] and sends() == []
    monday_9_london = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # the lead's zone, from country
    assert enrollment_of(lead.id).next_run_at == monday_9_london
    with time_machine.travel(monday_9_london - timedelta(minutes=1), tick=False):
        work()
    assert outbox_files() == []
    with time_machine.travel(monday_9_london + timedelta(seconds=1), tick=False):
        work()
    assert len(outbox_files()) == 1


def test_without_a_zone_or_country_the_campaigns_time_zone_sets_the_window(app):
    from campaigns.models import Campaign

    campaign = Campaign(name="Tokyo launch", slug="tokyo", timezone="Asia/Tokyo")
    db.session.add(campaign)
    lead = make_lead()  # no country, no time zone of their own
    sequence = make_sequence(window_days=[0, 1, 2, 3, 4], window_start_hour=9,
                             window_end_hour=17, timezone="America/Los_Angeles")
    monday_8_utc = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # 17:00 in Tokyo: the window is shut
    with time_machine.travel(monday_8_utc, tick=False):
        enrollment = enroll(lead.id, sequence.id, "test", campaign_id=campaign.id)
        db.session.commit()
        engine.kick([enrollment.id])
        drain()
    assert outbox_files() == []
    tuesday_9_tokyo = datetime(2030, 1, 8, 0, 0, tzinfo=UTC)  # not 09:00 in Los Angeles
    assert enrollment_of(lead.id).next_run_at == tuesday_9_tokyo


def test_the_frequency_cap_spaces_emails_from_different_sequences(app):
    lead = make_lead()
    first = make_sequence(name="First")
    second = make_sequence(email_step(subject="Second"), name="Second", frequency_cap_hours=24)
    start = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        engine.kick([_enroll(lead, first)])
        drain()
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        engine.kick([_enroll(lead, second)])
        drain()
        assert len(outbox_files()) == 1
        assert enrollment_of(lead.id).next_run_at == start + timedelta(hours=24)
    with time_machine.travel(start + timedelta(hours=24, seconds=1), tick=False):
        work()
    assert len(outbox_files()) == 2


def test_a_send_left_claimed_by_a_dead_worker_is_not_sent_again(app):
    lead, sequence = make_lead(), make_sequence(email_step(), email_step(subject="Next"))
    enrollment_id = _enroll(lead, sequence)
    step = sequence.steps[0]
    enrollment = db.session.get(Enrollment, enrollment_id)
    claim = ledger.claim(enrollment, step)  # the worker dies right after this
    assert claim.ours
    with time_machine.travel(utcnow() + timedelta(minutes=10)):
        assert engine.run_step(enrollment_id, step.id).startswith("postponed")
    assert outbox_files() == []
    (send,) = sends()
    assert send.status == "unknown"

    # The provider's events say it was delivered: the ledger is settled and the journey goes on.
    assert ledger.reconcile(send.id, "delivered") == "sent"
    db.session.commit()
    work()
    assert [s.status for s in sends()] == ["sent", "sent"]
    assert len(outbox_files()) == 1  # only "Next": the first one was never re-sent
    assert len(events(lead.id, "email_sent")) == 2


def test_reaching_an_exit_stage_ends_the_journey(app):
    lead = make_lead()
    sequence = make_sequence(email_step(), wait_step(3600), email_step(), exit_stages=["sql"])
    engine.kick([_enroll(lead, sequence)])
    drain()
    change_stage(db.session.get(Lead, lead.id), "sql", reason="sales accepted")
    db.session.commit()
    with time_machine.travel(utcnow() + timedelta(hours=2)):
        work()
    assert len(outbox_files()) == 1
    enrollment = enrollment_of(lead.id)
    assert enrollment.status == "exited" and "sql" in enrollment.exit_reason


def test_a_paused_sequence_holds_its_leads(app):
    lead, sequence = make_lead(), make_sequence()
    _enroll(lead, sequence)
    sequence.status = "paused"
    db.session.commit()
    assert engine.tick() == 0
    sequence.status = "active"
    db.session.commit()
    assert engine.tick() == 1


def test_the_tick_claims_in_bounded_batches(app):
    app.config["NURTURE_TICK_BATCH"] = 2
    sequence = make_sequence()
    for n in range(5):
        _enroll(make_lead(f"lead{n}@example.com"), sequence)
    assert len(engine.claim_due(2)) == 2
    assert engine.tick() == 3  # two batches: 2, then the last 1
    assert engine.tick() == 0
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Enrollment)
                             .where(Enrollment.next_run_at <= utcnow())) == 0


def test_two_workers_racing_to_claim_one_step_cannot_both_send(app, monkeypatch):
    lead, sequence = make_lead(), make_sequence()
    enrollment = db.session.get(Enrollment, _enroll(lead, sequence))
    step = sequence.steps[0]
    assert ledger.claim(enrollment, step).ours
    # The second worker looked for the row before the first one's insert was committed:
    monkeypatch.setattr(ledger, "find", lambda enrollment_id, step_id: None)
    assert ledger.claim(enrollment, step).outcome == "busy"  # the unique key says no
    assert len(sends()) == 1


def test_on_postgresql_the_tick_skips_rows_another_claimer_holds(app):
    import pytest

    if db.engine.dialect.name != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite has one writer")
    sequence = make_sequence()
    ids = [_enroll(make_lead(f"l{n}@example.com"), sequence) for n in range(4)]
    other = db.engine.connect()  # another tick, in the middle of its claim
    held = other.begin()
    other.execute(sa.text("SELECT id FROM nurture_enrollments WHERE id IN (:a, :b) FOR UPDATE")
                  .bindparams(a=ids[0], b=ids[1]))
    try:
        claimed = sorted(e for e, _ in engine.claim_due(10))
    finally:
        held.rollback()
        other.close()
    assert claimed == sorted(ids[2:])  # no waiting, no double claim
    assert sorted(e for e, _ in engine.claim_due(10)) == sorted(ids[:2])


def test_a_bounce_or_spam_report_during_the_journey_stops_it(app):
    from nurture.suppression import suppress

    bounced, reported = make_lead("b@example.com"), make_lead("s@example.com")
    sequence = make_sequence(email_step(), wait_step(3600), email_step(subject="Second"))
    for lead in (bounced, reported):
        engine.kick([_enroll(lead, sequence)])
    drain()
    assert len(outbox_files()) == 2
    db.session.get(Lead, bounced.id).bounced_at = utcnow()
    suppress("s@example.com", "spamreport", "webhook")  # a suppression alone is enough
    db.session.commit()
    with time_machine.travel(utcnow() + timedelta(hours=2)):
        work()
    assert len(outbox_files()) == 2
    assert enrollment_of(bounced.id).exit_reason == "bounced"
    assert enrollment_of(reported.id).exit_reason == "suppressed (spamreport)"


def test_on_postgresql_two_workers_cannot_both_pass_the_frequency_cap(app, monkeypatch):
    import threading

    import pytest

    from nurture import sender

    if db.engine.dialect.name != "postgresql":
        pytest.skip("concurrent workers need PostgreSQL; SQLite has a single writer")
    lead = make_lead()
    first = make_sequence(email_step(subject="First"), name="First", frequency_cap_hours=24)
    second = make_sequence(email_step(subject="Second"), name="Second", frequency_cap_hours=24)
    jobs = [(_enroll(lead, s), s.steps[0].id) for s in (first, second)]
    db.session.commit()
    barrier = threading.Barrier(2, timeout=10)
    real_next_opening = sender.next_opening

    def together(*args):  # both workers reach the cap decision at the same moment
        barrier.wait()
        return real_next_opening(*args)

    monkeypatch.setattr(sender, "next_opening", together)
    results = []

    def worker(enrollment_id, step_id):
        with app.app_context():
            results.append(engine.run_step(enrollment_id, step_id))
            db.session.remove()

    threads = [threading.Thread(target=worker, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outbox_files()) == 1, results
    assert sorted(r.split(" ")[0] for r in results) == ["postponed", "sent"]

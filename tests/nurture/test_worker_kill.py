"""A worker killed with SIGKILL in the middle of a batch of nurture emails, then restarted: every
due email goes out exactly once. The email whose send was cut off after SendGrid accepted it is
not sent again; the ledger marks it `unknown` and SendGrid's `processed` event settles it."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event
from nurture import engine, ledger
from nurture.enrollment import enroll
from nurture.models import Enrollment, Send
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.nurture.factories import make_lead, make_sequence, sends
from tests.nurture.worker_process import (
    HoldAfterAccept,
    WorkerProcess,
    alive,
    process_config,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.slow

LEADS = 20
KILLED_AT = 4  # SendGrid accepts the 4th email; the worker is killed before it hears back
# Short leases and timeouts so that recovery fits in a test. The worker processes read them from
# the instance folder's kindling.cfg (the environment carries only the ENV_NAMES settings).
# NURTURE_RUN_CHUNK = 1: one job per email, as this first test's story needs (the chunked,
# concurrent sender has a test of its own below).
FAST = {"NURTURE_CLAIM_LEASE_SECONDS": 3, "NURTURE_SEND_CLAIM_TIMEOUT": 2,
        "NURTURE_UNKNOWN_RECHECK_SECONDS": 1, "NURTURE_RUN_CHUNK": 1}
WORKER_TIMEOUT = 120


@pytest.fixture
def sendgrid():
    server = FakeSendGrid(delay=0.2).start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, sendgrid):
    return process_config(app_config, FAST, sendgrid.url)


@pytest.fixture
def workers(tmp_path):
    """Start worker processes; whatever is still running at the end is killed."""
    started: list[WorkerProcess] = []

    def start(app_config, name: str, *, burst: bool = False) -> WorkerProcess:
        worker = WorkerProcess(worker_env(app_config), tmp_path / f"{name}.log", burst=burst)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def emails_per_recipient(fake: FakeSendGrid) -> Counter:
    return Counter(request.json["personalizations"][0]["to"][0]["email"]
                   for request in fake.mail_sends)


def burst(workers, app_config, name: str) -> None:
    worker = workers(app_config, name, burst=True)
    assert worker.wait(WORKER_TIMEOUT) == 0, worker.log()


def until_every_journey_is_done(workers, app_config, *, before_tick=None, pause: float = 0.0,
                                timeout: float = 90) -> None:
    """Tick and work (a fresh burst worker each round) until no enrollment is left unfinished."""
    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        live = db.session.scalar(sa.select(sa.func.count()).select_from(Enrollment)
                                 .where(Enrollment.status != "finished"))
        if live == 0:
            return
        assert time.monotonic() < deadline, f"{live} enrollments never finished"
        if before_tick is not None:
            before_tick()
        engine.tick()
        burst(workers, app_config, f"worker-{int(time.monotonic() * 1000)}")
        if pause:
            time.sleep(pause)


def test_a_worker_killed_mid_batch_sends_every_due_email_exactly_once(app, app_config, sendgrid,
                                                                      workers):
    sequence = make_sequence()  # one email
    addresses = [f"lead{i:02d}@example.com" for i in range(LEADS)]
    leads = [make_lead(address, first_name=f"Lead{i}") for i, address in enumerate(addresses)]
    for lead in leads:
        enroll(lead.id, sequence.id, "test")
    db.session.commit()
    gate = HoldAfterAccept(sendgrid, nth=KILLED_AT)
    assert engine.tick() == LEADS  # twenty one-step jobs wait in Redis

    # 1. A worker sends; while SendGrid holds its answer to the 4th email, SIGKILL.
    first = workers(app_config, "worker-1")
    try:
        assert gate.arrived.wait(WORKER_TIMEOUT), first.log()
        killed = first.kill()
    finally:
        gate.release()
    assert len(killed) >= 2, killed  # the worker and at least its work-horse
    wait_for(lambda: not any(alive(pid) for pid in killed), 10, "the killed processes to go")
    time.sleep(0.5)  # nothing is sending any more
    assert len(sendgrid.mail_sends) == KILLED_AT
    assert Counter(s.status for s in sends()) == {"sent": KILLED_AT - 1, "claimed": 1}
    (cut_off,) = [s for s in sends() if s.status == "claimed"]

    # 2. A new worker runs the jobs still queued: each of the other emails goes out.
    burst(workers, app_config, "worker-2")
    assert emails_per_recipient(sendgrid) == Counter(addresses)
    assert Counter(s.status for s in sends()) == {"sent": LEADS - 1, "claimed": 1}

    # 3. The tick offers the cut-off enrollment again once its lease has run out. The send left
    #    `claimed` by a dead worker becomes `unknown` and is NOT sent again.
    age = utcnow() - cut_off.claimed_at
    time.sleep(max(0.0, FAST["NURTURE_SEND_CLAIM_TIMEOUT"] + 0.5 - age.total_seconds()))
    wait_for(lambda: engine.tick() == 1, 20, "the tick to claim the cut-off enrollment", 0.5)
    burst(workers, app_config, "worker-3")
    assert emails_per_recipient(sendgrid) == Counter(addresses)  # still exactly once each
    db.session.expire_all()
    assert db.session.get(Send, cut_off.id).status == "unknown"
    stuck = db.session.get(Enrollment, cut_off.enrollment_id)
    assert stuck.status == "active" and stuck.step_id == cut_off.step_id

    # 4. SendGrid's webhook reports `processed` for every email it accepted (matched by the
    #    send_id custom arg): the unknown send is settled as sent, the others need nothing.
    settled = {}
    for request in sendgrid.mail_sends:
        send_id = int(request.json["custom_args"]["send_id"])
        settled[send_id] = ledger.reconcile(send_id, "processed")
    db.session.commit()
    assert {k: v for k, v in settled.items() if v is not None} == {cut_off.id: "sent"}

    # 5. Tick and work until every journey is done.
    until_every_journey_is_done(workers, app_config)

    assert emails_per_recipient(sendgrid) == Counter(addresses)  # each exactly once
    assert len(sendgrid.mail_sends) == LEADS
    final = sends()
    assert len(final) == LEADS
    assert all(s.status == "sent" and s.attempts == 1 for s in final)
    db.session.expire_all()
    sent_events = Counter(db.session.scalars(
        sa.select(Event.lead_id).where(Event.type == "email_sent")).all())
    assert sent_events == Counter({lead.id: 1 for lead in leads})  # the timeline agrees
    enrollments = db.session.scalars(sa.select(Enrollment)).all()
    assert {e.exit_reason for e in enrollments} == {"completed every step"}


def test_a_worker_killed_mid_chunk_of_concurrent_sends_sends_every_email_exactly_once(
        app, app_config, sendgrid, workers):
    """The default shape: the whole batch in one run_steps job, its steps sent several at a time
    (PostgreSQL; one at a time on SQLite). SIGKILL while SendGrid holds one answer: the rest of
    the chunk dies with the worker and comes back through the tick when the leases run out;
    nothing SendGrid received is sent again, nothing claimed is lost."""
    app.config["NURTURE_RUN_CHUNK"] = 50  # one job for all twenty
    process_config(app_config, {**FAST, "NURTURE_RUN_CHUNK": 50}, sendgrid.url)  # kindling.cfg
    sequence = make_sequence()  # one email
    addresses = [f"lead{i:02d}@example.com" for i in range(LEADS)]
    leads = [make_lead(address, first_name=f"Lead{i}") for i, address in enumerate(addresses)]
    for lead in leads:
        enroll(lead.id, sequence.id, "test")
    db.session.commit()
    gate = HoldAfterAccept(sendgrid, nth=KILLED_AT)
    assert engine.tick() == LEADS
    from app.queue import get_queue

    (job,) = get_queue("mail").get_jobs()  # one chunk carries every step
    assert job.func_name == "nurture.jobs.run_steps" and len(job.args[0]) == LEADS

    first = workers(app_config, "worker-1")
    try:
        assert gate.arrived.wait(WORKER_TIMEOUT), first.log()
        killed = first.kill()
    finally:
        gate.release()
    assert len(killed) >= 2, killed
    wait_for(lambda: not any(alive(pid) for pid in killed), 10, "the killed processes to go")
    time.sleep(0.5)

    # Every request SendGrid received had its ledger row committed first; an answered one is
    # `sent`, the held one (and any other cut off) `claimed`.
    received = [int(r.json["custom_args"]["send_id"]) for r in sendgrid.mail_sends]
    assert len(received) >= KILLED_AT and len(set(received)) == len(received)
    rows = {s.id: s.status for s in sends()}
    assert set(received) <= set(rows)
    assert {status for sid, status in rows.items()} <= {"sent", "claimed"}
    assert {sid for sid, status in rows.items() if status == "sent"} <= set(received)
    assert list(rows.values()).count("claimed") >= 1
    if db.engine.dialect.name == "sqlite":  # one at a time: exactly the serial story
        assert len(received) == KILLED_AT
        assert Counter(rows.values()) == {"sent": KILLED_AT - 1, "claimed": 1}
    assert len(received) < LEADS  # the kill did cut the chunk short

    # Nothing is queued any more: the rest of the chunk comes back through the tick once the
    # leases run out; a send left `claimed` becomes `unknown` and waits for the provider.
    burst(workers, app_config, "worker-2")
    assert len(sendgrid.mail_sends) == len(received)
    def settle_unknown_sends() -> None:
        # The provider's word on each unsettled send: SendGrid's `processed` for what it
        # received, "not found" for a claim whose request never left (safe to send again).
        got = {int(r.json["custom_args"]["send_id"]) for r in sendgrid.mail_sends}
        for send in sends():
            if send.status == "unknown":
                ledger.reconcile(send.id, "processed" if send.id in got else "not_found")
        db.session.commit()

    until_every_journey_is_done(workers, app_config, before_tick=settle_unknown_sends, pause=0.3)

    assert emails_per_recipient(sendgrid) == Counter(addresses)  # each exactly once
    final = sends()
    assert len(final) == LEADS and all(s.status == "sent" for s in final)
    db.session.expire_all()
    sent_events = Counter(db.session.scalars(
        sa.select(Event.lead_id).where(Event.type == "email_sent")).all())
    assert sent_events == Counter({lead.id: 1 for lead in leads})
    enrollments = db.session.scalars(sa.select(Enrollment)).all()
    assert {e.exit_reason for e in enrollments} == {"completed every step"}

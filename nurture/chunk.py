"""Running a chunk of steps (`nurture.jobs.run_steps`), the common case on a lean path.

Most steps of a chunk are email steps due now for leads who may be emailed. For those, the
chunk reads what they need in one query for the whole chunk (the enrollments, the lead columns
a send uses, the suppression row, the campaign) plus one for the sequences and their steps.
Then each of up to NURTURE_SEND_THREADS threads ("lanes", one on SQLite) sends its share on one
database connection of its own, with Core statements and no ORM objects in the session:

    [lock the lead row, frequency cap]  ledger claim  recheck  render  tracked links  COMMIT
    provider call
    sent, the `email_sent` event, the next step (or the journey's end)  COMMIT

So the ledger claim is committed before the provider is called (a send has a unique ledger row
before it leaves), and the recheck, after the claim, reads the enrollment and the lead as they
are now (an unsubscribe while the job sat in the queue still stops the email). Follow-up work is
done once per chunk, at its end: a kick for the enrollments whose next step is due now and the
scoring jobs of the leads emailed (these events bypass the ORM flush scoring listens to).

Anything else - another kind of step, a stale or ended journey, a closed send window, a cap in
force, a ledger row already there, a lead who may not be emailed, a template that fails - rolls
the lean transaction back (so nothing of it is written) and runs the step as `engine.run_step`
does, in an app context of its own, which decides and records it. A provider error is handled by
`sender.after_mail_error` on ORM objects, exactly as for a single step.
"""

from __future__ import annotations

import functools
import logging
import queue as stdlib_queue
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.orm import Session, selectinload

from app import mail
from app.db import db, utcnow
from app.jobs import JobTimeout
from app.leads.event_columns import split_send
from app.leads.models import Event, Lead
from nurture import engine, ledger, sender
from nurture import enrollment as enrollments
from nurture.models import (
    LIVE_STATUSES,
    Enrollment,
    EnrollmentStatus,
    Send,
    Sequence,
    Step,
    StepKind,
    Suppression,
)
from nurture.render import TemplateProblem, build_new_send_email
from nurture.steps import next_in
from nurture.timing import lead_zone, next_opening

log = logging.getLogger(__name__)

# What a send reads of its lead: the template context, time zone, consent, emailability.
LEAD_COLUMNS = ("id", "email", "email_display", "first_name", "last_name", "company",
                "job_title", "country", "stage", "attributes", "unsubscribed_at", "bounced_at")


@dataclass
class Planned:
    """An email step the lean path may send: what the chunk query read about it."""

    enrollment_id: int
    step: Step  # detached, read-only: loaded for the chunk and shared by its lanes
    sequence: Sequence
    lead: Lead  # transient (never in a session): the chunk query's copy of the row
    campaign: dict[str, Any]


@dataclass
class Followups:
    """What a lane leaves for the end of the chunk."""

    kicks: list[int] = field(default_factory=list)  # enrollments whose next step is due now
    leads: set[int] = field(default_factory=set)  # leads with new events: scoring looks again
    links: list[tuple[int, int, str]] = field(default_factory=list)  # committed tracked links


def send_threads(app: Flask, count: int) -> int:
    """Threads for a chunk of `count` steps: one on SQLite (a single writer)."""
    if db.engine.dialect.name == "sqlite":
        return 1
    return max(1, min(int(app.config["NURTURE_SEND_THREADS"]), count))


def run(app: Flask, work: list[tuple[int, int]]) -> list[str]:
    """Run the (enrollment_id, step_id) steps of a chunk; their outcomes, in order. Called in
    an app context. A step that raises is logged and left alone: its enrollment keeps its
    claim lease, and the tick offers it again when the lease runs out."""
    plans = plan(work)
    tasks: stdlib_queue.SimpleQueue = stdlib_queue.SimpleQueue()
    for index, (pair, planned) in enumerate(zip(work, plans)):
        tasks.put((index, pair, planned))
    outcomes: list[str] = [""] * len(work)
    lanes = [_Lane(app, tasks, outcomes) for _ in range(send_threads(app, len(work)))]
    if len(lanes) == 1:
        lanes[0].run()
    else:
        threads = [threading.Thread(target=lane.run, name=f"nurture-lane-{n}")
                   for n, lane in enumerate(lanes)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            # The job ran out of time (RQ's JobTimeoutException) or was stopped. An in-process
            # worker goes on to its next job: the lanes finish the step in hand and take no
            # more, and the steps left keep their claim lease for the tick.
            _cancel(tasks)
            raise
    _follow_up(lanes)
    return outcomes


def _cancel(tasks: stdlib_queue.SimpleQueue) -> None:
    while True:
        try:
            tasks.get_nowait()
        except stdlib_queue.Empty:
            return


def _follow_up(lanes: list[_Lane]) -> None:
    """Once per chunk: the tracked links' targets go to Redis (one round trip for the chunk's
    sends), next steps due now start at once, and scoring hears of the sends."""
    from nurture.scoring.incremental import enqueue_for
    from nurture.tracking import links

    targets = [link for lane in lanes for link in lane.followups.links]
    if targets and "redis" in current_app.extensions:
        links.publish(targets)
    kicks = [eid for lane in lanes for eid in lane.followups.kicks]
    leads = {lid for lane in lanes for lid in lane.followups.leads}
    if kicks:
        engine.kick(kicks)
    if leads:
        enqueue_for(leads)


# ---------------------------------------------------------------- reading the chunk

def plan(work: list[tuple[int, int]]) -> list[Planned | None]:
    """Per step, a Planned when the lean path may try it, else None (engine.run_step runs
    it). Two queries for the whole chunk, on one connection given back at once."""
    with db.engine.connect() as connection:
        rows = {row.enrollment_id: row for row in connection.execute(
            chunk_statement(), {"ids": sorted({e for e, _ in work})})}
        sequences = _sequences(connection, {row.sequence_id for row in rows.values()})
    now = utcnow()
    return [_plan_one(rows.get(e), s, sequences, now) for e, s in work]


@functools.cache
def chunk_statement() -> sa.Select:
    """Enrollments (`ids`, expanding) with what their sends read, labelled by purpose. Also the
    recheck of one send, so both share one compiled statement."""
    from campaigns.models import Campaign  # a model, not a view: allowed across packages

    return (
        sa.select(Enrollment.id.label("enrollment_id"), Enrollment.status, Enrollment.step_id,
                  Enrollment.sequence_id, Enrollment.campaign_id,
                  Suppression.reason.label("suppressed"),
                  Campaign.id.label("campaign_found"), Campaign.name.label("campaign_name"),
                  Campaign.timezone.label("campaign_timezone"),
                  *(getattr(Lead, name).label(f"lead_{name}") for name in LEAD_COLUMNS))
        .join(Lead, Lead.id == Enrollment.lead_id)
        .outerjoin(Suppression, Suppression.email == Lead.email)
        .outerjoin(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Enrollment.id.in_(sa.bindparam("ids", expanding=True)))
    )


def _sequences(connection: sa.Connection, ids: set[int]) -> dict[int, Sequence]:
    """The sequences with their steps, detached from a session closed at once: the lanes only
    read their loaded columns (never a lazy relationship such as `step.sequence`)."""
    if not ids:
        return {}
    with Session(bind=connection, expire_on_commit=False) as session:
        found = session.scalars(sa.select(Sequence).where(Sequence.id.in_(sorted(ids)))
                                .options(selectinload(Sequence.steps))).all()
    return {sequence.id: sequence for sequence in found}


def _lead(row: sa.Row) -> Lead:
    return Lead(**{name: getattr(row, f"lead_{name}") for name in LEAD_COLUMNS})


def _plan_one(row: sa.Row | None, step_id: int, sequences: dict[int, Sequence],
              now) -> Planned | None:
    if row is None or row.status != EnrollmentStatus.ACTIVE.value or row.step_id != step_id:
        return None
    sequence = sequences.get(row.sequence_id)
    if sequence is None or not sequence.is_active:
        return None
    step = next((s for s in sequence.steps if s.id == step_id), None)
    if step is None or step.kind != StepKind.EMAIL.value:
        return None
    lead = _lead(row)
    if engine.journey_stop(lead, sequence, row.suppressed) is not None:
        return None
    zone = lead_zone(lead, row.campaign_timezone, sequence.timezone)
    if next_opening(now, zone, sequence.window_days or [], sequence.window_start_hour,
                    sequence.window_end_hour) != now:
        return None  # outside the window (or never open): run_step postpones or ends it
    campaign = ({"id": row.campaign_found, "name": row.campaign_name}
                if row.campaign_found is not None else {})
    return Planned(row.enrollment_id, step, sequence, lead, campaign)


# ---------------------------------------------------------------- one lane

@dataclass
class _Claimed:
    send_id: int
    email: mail.Email
    tracker: Any


class _Lane:
    """One thread's share of the chunk: steps taken from the shared queue one at a time, the
    lean ones on a connection this lane keeps (no pool checkout, no ping, per step)."""

    def __init__(self, app: Flask, tasks: stdlib_queue.SimpleQueue, outcomes: list[str]):
        self.app = app
        self.tasks = tasks
        self.outcomes = outcomes
        self.followups = Followups()
        self._connection: sa.Connection | None = None

    def run(self) -> None:
        with self.app.app_context():
            try:
                while True:
                    try:
                        index, (enrollment_id, step_id), planned = self.tasks.get_nowait()
                    except stdlib_queue.Empty:
                        return
                    self.outcomes[index] = self._step(enrollment_id, step_id, planned)
            finally:
                self._close()

    def _step(self, enrollment_id: int, step_id: int, planned: Planned | None) -> str:
        if planned is not None:
            try:
                outcome = self._send(planned)
            except JobTimeout:  # the job's time is up (a lane in the job's own thread)
                self._close()
                raise
            except Exception as exc:  # one step's failure must not sink the rest of the chunk
                log.exception("nurture: enrollment %s step %s failed; the tick retries it when "
                              "its lease runs out", enrollment_id, step_id)
                self._close()  # the connection itself may be what failed
                return f"error: {type(exc).__name__}"
            if outcome is not None:
                return outcome
        return run_one(self.app, enrollment_id, step_id)

    def connection(self) -> sa.Connection:
        if self._connection is None:
            self._connection = db.engine.connect()
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.debug("closing a lane's connection failed", exc_info=True)
            self._connection = None

    def _send(self, planned: Planned) -> str | None:
        """Send one planned email; None (nothing written) when run_step must decide instead."""
        connection = self.connection()
        with connection.begin() as transaction:
            claimed = _claim(connection, planned)
            if claimed is None:
                transaction.rollback()
                return None
        # Committed: the ledger row exists, and so do the tracked links anyone may click (their
        # targets go to Redis once per chunk; until then a click reads them from the database).
        deferred = getattr(claimed.tracker, "deferred_links", None)
        if deferred is not None:
            self.followups.links.extend(deferred())
        try:
            message_id = mail.transmit(claimed.email, key=ledger.sent_event_key(claimed.send_id))
        except mail.MailError as exc:
            return _after_mail_error(self.app, planned, claimed.send_id, exc)
        with connection.begin():
            moved_on = _record_sent(connection, planned, claimed.send_id, message_id)
        self.followups.leads.add(planned.lead.id)
        if moved_on:
            self.followups.kicks.append(planned.enrollment_id)
        return "sent"


def _claim(connection: sa.Connection, planned: Planned) -> _Claimed | None:
    """In the caller's transaction: cap, claim, recheck, render, links. None: roll back."""
    step, lead = planned.step, planned.lead
    hours = planned.sequence.frequency_cap_hours or 0
    if hours > 0:
        # As in sender: the lead's row stays locked until this claim commits, so two workers
        # cannot both find no recent email.
        connection.execute(sender.lock_lead_statement(lead.id))
        last = connection.execute(
            sender.last_email_statement(lead.id, planned.enrollment_id, step.id)).scalar()
        if sender.cap_end(last, hours, utcnow()) is not None:
            return None
    send_id = ledger.claim_new(connection, planned.enrollment_id, step.id, lead.id,
                               step.subject)
    if send_id is None:
        return None  # the key is taken (or no ON CONFLICT here): ledger.claim decides
    current = _recheck(connection, planned)
    if current is None:
        return None
    try:
        email, tracker = build_new_send_email(step, current, send_id=send_id,
                                              enrollment_id=planned.enrollment_id,
                                              campaign=planned.campaign)
    except TemplateProblem:
        return None  # run_step records the failure with its reason
    write = getattr(tracker, "write", None)
    if write is not None:
        write(connection)
    return _Claimed(send_id, email, tracker)


def _recheck(connection: sa.Connection, planned: Planned) -> Lead | None:
    """After the claim: the lead as it is now when the journey is still at this step and may
    go on (not unsubscribed, bounced, suppressed, exited or at its goal), else None."""
    row = connection.execute(chunk_statement(), {"ids": [planned.enrollment_id]}).one_or_none()
    if row is None or row.status != EnrollmentStatus.ACTIVE.value \
            or row.step_id != planned.step.id:
        return None
    lead = _lead(row)
    if engine.journey_stop(lead, planned.sequence, row.suppressed) is not None:
        return None
    return lead


def _record_sent(connection: sa.Connection, planned: Planned, send_id: int,
                 message_id: str) -> bool:
    """The provider has it: the ledger row, the lead's events and the journey's next step,
    in the caller's transaction. True when the next step is due now (to kick)."""
    sent_at = ledger.mark_sent_now(connection, send_id, message_id)
    if sent_at is None:
        return False  # a provider event settled it meanwhile, and wrote its event
    step, lead_id = planned.step, planned.lead.id
    events = [_event(lead_id, "email_sent", sent_at, ledger.sent_event_data(
        send_id, planned.enrollment_id, planned.sequence.id, step.id, (step.subject or "")[:300]),
        ledger.sent_event_key(send_id))]
    following = next_in(planned.sequence.steps, step)
    at_step = {"enrollment_pk": planned.enrollment_id, "at_step": step.id}
    if following is not None:
        moved = connection.execute(_AT_STEP, {**at_step, "step_id": following.id,
                                              "step_entered_at": sent_at,
                                              "next_run_at": sent_at}).rowcount
    else:
        moved = connection.execute(_AT_STEP, {**at_step,
                                              "status": EnrollmentStatus.FINISHED.value,
                                              "exit_reason": engine.COMPLETED,
                                              "ended_at": sent_at, "next_run_at": None}).rowcount
        if moved:
            events.append(_event(lead_id, enrollments.ended_event_type(True), sent_at,
                                 enrollments.ended_event_data(planned.enrollment_id,
                                                              planned.sequence.id,
                                                              engine.COMPLETED), None))
    connection.execute(_EVENTS, events)
    return bool(moved) and following is not None


# Built once, so their cache keys are too. The enrollment is still live at the step that was
# sent (`enrollment_pk`, `at_step`); the other parameters are what it is set to.
_AT_STEP = sa.update(Enrollment).where(Enrollment.id == sa.bindparam("enrollment_pk"),
                                       Enrollment.step_id == sa.bindparam("at_step"),
                                       Enrollment.status.in_(LIVE_STATUSES))
_EVENTS = sa.insert(Event)


def _event(lead_id: int, type_: str, at, data: dict, dedupe_key: str | None) -> dict:
    """An event row as `record_event` stores it: the send and step in their columns."""
    rest, send_id, step_id = split_send(data)
    return {"lead_id": lead_id, "type": type_, "occurred_at": at, "data": rest,
            "send_id": send_id, "step_id": step_id, "dedupe_key": dedupe_key}


def _after_mail_error(app: Flask, planned: Planned, send_id: int, exc: mail.MailError) -> str:
    """The provider did not take it: as for a single step (unknown, failed, or a retry), on
    ORM objects in a session of their own."""
    with app.app_context():
        enrollment, _ = engine.load_enrollment(planned.enrollment_id)
        send = db.session.get(Send, send_id)
        step = db.session.get(Step, planned.step.id)
        if enrollment is None or send is None or step is None:
            return "stale"
        return sender.after_mail_error(enrollment, step, send, exc)


def run_one(app: Flask, enrollment_id: int, step_id: int) -> str:
    """One step as `engine.run_step` runs it, in an app context (and session) of its own."""
    with app.app_context():  # a session of this step's own, removed when the context ends
        try:
            return engine.run_step(enrollment_id, step_id)
        except JobTimeout:  # the job's time is up: the steps left keep their claim lease
            raise
        except Exception as exc:  # one step's failure must not sink the rest of the chunk
            log.exception("nurture: enrollment %s step %s failed; the tick retries it when "
                          "its lease runs out", enrollment_id, step_id)
            try:
                db.session.rollback()
            except Exception:  # the connection itself may be what failed
                log.debug("rollback after a failed step failed too", exc_info=True)
            return f"error: {type(exc).__name__}"

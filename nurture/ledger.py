"""The send ledger: the only thing that decides whether an email step may go out.

A row per (enrollment, email step) is inserted — and committed — before the provider is called.
The unique key makes a second worker, or RQ delivering the same job twice, find the row and
stand back. An attempt left in `claimed` by a worker that died is never retried blindly: it
becomes `unknown` until `reconcile` learns from the provider what happened.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from app.db import db, insert_or_skip, rows_matched, utcnow
from app.leads.service import record_event
from app.mail.ledger import PROVIDER_ACCEPTED, PROVIDER_REJECTED
from nurture.models import Enrollment, Send, SendStatus, Step

log = logging.getLogger(__name__)

# SendGrid event names, as for the mail ledger; and "not_found" for a message the provider
# never received.
PROVIDER_NEVER_RECEIVED = {"not_found"}


@dataclass
class Claim:
    outcome: str  # claimed | done | failed | unknown | busy
    send: Send | None

    @property
    def ours(self) -> bool:
        return self.outcome == "claimed"


def find(enrollment_id: int, step_id: int) -> Send | None:
    return db.session.scalar(sa.select(Send).where(Send.enrollment_id == enrollment_id,
                                                   Send.step_id == step_id))


def claim(enrollment: Enrollment, step: Step) -> Claim:
    """Take the right to send this step, committing the claim. Only 'claimed' may send.

    The common case, no row yet, is one INSERT … ON CONFLICT DO NOTHING; when the key is
    taken, the row found decides (a row another worker has not committed yet: busy)."""
    now = utcnow()
    send = _insert_claim(enrollment, step, now)
    if send is not None:
        db.session.commit()
        return Claim("claimed", send)
    existing = find(enrollment.id, step.id)
    if existing is None:  # inserted by another worker, not visible to us yet (or just gone)
        return Claim("busy", None)
    status = existing.status
    if status == SendStatus.SENT.value:
        return Claim("done", existing)
    if status == SendStatus.FAILED.value:
        return Claim("failed", existing)
    if status == SendStatus.UNKNOWN.value:
        return Claim("unknown", existing)
    if status == SendStatus.CLAIMED.value:
        timeout = timedelta(seconds=int(current_app.config["NURTURE_SEND_CLAIM_TIMEOUT"]))
        if existing.claimed_at and existing.claimed_at > now - timeout:
            return Claim("busy", existing)  # another worker is talking to the provider now
        _move(existing, SendStatus.CLAIMED, status=SendStatus.UNKNOWN.value,
              error="the worker stopped during the send; waiting for provider events")
        return Claim("unknown", existing)
    # RETRY: take the next attempt, unless another worker just did.
    if _move(existing, SendStatus.RETRY, status=SendStatus.CLAIMED.value, claimed_at=now,
             attempts=Send.attempts + 1):
        return Claim("claimed", existing)
    return Claim("busy", existing)


def _claim_values(enrollment_id: int, step_id: int, lead_id: int, subject: str | None,
                  now) -> dict:
    return {"enrollment_id": enrollment_id, "step_id": step_id, "lead_id": lead_id,
            "status": SendStatus.CLAIMED.value, "attempts": 1, "claimed_at": now,
            "subject": (subject or "")[:300]}


@functools.cache
def _claim_insert(dialect: str):
    """INSERT … ON CONFLICT (enrollment_id, step_id) DO NOTHING, values given at execution,
    or None on a database that has no such statement (there the plain INSERT and the unique
    key decide). Built once per dialect, so its cache key is worked out once too."""
    return insert_or_skip(Send, ["enrollment_id", "step_id"], dialect)


def _insert_claim(enrollment: Enrollment, step: Step, now) -> Send | None:
    """INSERT the claim row unless (enrollment, step) has one: the new Send, or None when
    another row holds the key. One statement, and no failed statement to roll back."""
    values = _claim_values(enrollment.id, step.id, enrollment.lead_id, step.subject, now)
    statement = _claim_insert(db.engine.dialect.name)
    if statement is None:  # any other database: the plain INSERT, the unique key deciding
        send = Send(**values)
        db.session.add(send)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return None
        return send
    return db.session.scalars(statement.values(**values).returning(Send)).one_or_none()


def claim_new(connection: sa.Connection, enrollment_id: int, step_id: int, lead_id: int,
              subject: str | None) -> int | None:
    """The chunk runner's claim (`nurture.chunk`), on its own connection and in its open
    transaction, which the caller commits before calling the provider: the new row's id, or
    None when (enrollment, step) already has a row (or this database has no ON CONFLICT),
    which `claim` then decides about."""
    statement = _claim_new_statement(connection.dialect.name)
    if statement is None:
        return None
    return connection.execute(statement, _claim_values(enrollment_id, step_id, lead_id, subject,
                                                       utcnow())).scalar_one_or_none()


@functools.cache
def _claim_new_statement(dialect: str):
    insert = _claim_insert(dialect)
    return None if insert is None else insert.returning(Send.id)


# The row to update is `send_pk`; the other parameters are what it is set to.
_MARK_SENT = sa.update(Send).where(Send.id == sa.bindparam("send_pk"),
                                   Send.status == SendStatus.CLAIMED.value)


def mark_sent_now(connection: sa.Connection, send_id: int, provider_message_id: str):
    """`mark_sent` for the chunk runner, one UPDATE; only a `claimed` row moves (one that a
    provider event settled meanwhile is left as it is). Returns sent_at, or None when the row
    was not `claimed` any more."""
    now = utcnow()
    moved = connection.execute(_MARK_SENT, {
        "send_pk": send_id, "status": SendStatus.SENT.value, "sent_at": now, "error": None,
        "provider_message_id": (provider_message_id or "")[:200] or None}).rowcount
    return now if moved == 1 else None


def _move(send: Send, expected: SendStatus, **values) -> bool:
    """Compare-and-set on the status, committed: True when this process made the change."""
    matched = rows_matched(
        sa.update(Send).where(Send.id == send.id, Send.status == expected.value)
        .values(updated_at=utcnow(), **values).execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(send)
    return matched == 1


def mark_sent(send: Send, provider_message_id: str) -> None:
    send.status = SendStatus.SENT.value
    send.provider_message_id = (provider_message_id or "")[:200] or None
    send.sent_at = utcnow()
    send.error = None


def mark_retry(send: Send, error: str) -> None:
    send.status = SendStatus.RETRY.value
    send.error = error[:2000]


def mark_unknown(send: Send, error: str) -> None:
    """The provider may have the email: never re-send it; `reconcile` settles it."""
    send.status = SendStatus.UNKNOWN.value
    send.error = error[:2000]


def mark_failed(send: Send, error: str) -> None:
    send.status = SendStatus.FAILED.value
    send.error = error[:2000]


def record_sent_event(send: Send) -> None:
    """The lead's timeline entry; `send_id` in its data ties provider events to the step."""
    enrollment = send.enrollment
    # The dedupe look-up needs no flush first: the only event with this key is the one this
    # function writes, once per send (the send is `sent` from then on).
    with db.session.no_autoflush:
        _record_sent(send, enrollment)


def _record_sent(send: Send, enrollment: Enrollment) -> None:
    record_event(enrollment.lead, "email_sent", occurred_at=send.sent_at,
                 data=sent_event_data(send.id, enrollment.id, enrollment.sequence_id,
                                      send.step_id, send.subject),
                 dedupe_key=sent_event_key(send.id), flush=False)


def sent_event_data(send_id: int, enrollment_id: int, sequence_id: int, step_id: int,
                    subject: str) -> dict:
    """The `email_sent` event's data: `send_id` ties provider events to the step."""
    return {"send_id": str(send_id), "enrollment_id": str(enrollment_id),
            "sequence_id": sequence_id, "step_id": step_id, "subject": subject}


def sent_event_key(send_id: int) -> str:
    return f"nurture-send:{send_id}"


def reconcile(send_id: int, provider_status: str) -> str | None:
    """Settle a `claimed`/`unknown` attempt from what the provider reports (the webhook calls
    this with SendGrid's event name, matched by the `send_id` custom arg). Returns the new
    status, or None when the row needed nothing. The caller commits.

    delivered/processed/open/... → sent (with its `email_sent` event); bounce/dropped → failed;
    not_found → retry (the provider never had it, so sending again is safe).
    """
    send = db.session.get(Send, send_id)
    if send is None or send.status not in (SendStatus.CLAIMED.value, SendStatus.UNKNOWN.value):
        return None
    status = (provider_status or "").lower()
    if status in PROVIDER_ACCEPTED:
        mark_sent(send, send.provider_message_id or "")
        record_sent_event(send)
    elif status in PROVIDER_REJECTED:
        mark_failed(send, f"provider reported {status}")
    elif status in PROVIDER_NEVER_RECEIVED:
        mark_retry(send, "the provider never received it")
    else:
        return None
    enrollment = send.enrollment
    if enrollment.is_live and enrollment.step_id == send.step_id:
        enrollment.next_run_at = utcnow()  # let the engine move on at the next tick
    db.session.flush()
    return send.status


def wait_for_sends_in_flight(lead_id: int) -> int:
    """The erasure barrier (`app.privacy.holders.add_erasure_barrier`): after the erasure's
    commit, wait until no email to the lead is claimed and unsettled, i.e. between a worker's
    claim and the provider's answer. A claim commits before its recheck of the lead (the lean
    chunk's, in one transaction, holds the lead's key lock through its foreign key, which the
    erasure's row lock waits for), so a send either saw the erasure and stops, or is seen here.
    Waits at most PRIVACY_ERASE_WAIT_SECONDS; an older claim is a dead worker's (reconciled
    from provider events) and is not waited for. Returns how many sends were waited for."""
    import time

    limit = float(current_app.config.get("PRIVACY_ERASE_WAIT_SECONDS", 30))
    deadline = time.monotonic() + limit
    waited: set[int] = set()
    while True:
        since = utcnow() - timedelta(seconds=limit)
        claimed = set(db.session.scalars(sa.select(Send.id).where(
            Send.lead_id == lead_id, Send.status == SendStatus.CLAIMED.value,
            Send.claimed_at > since)))
        db.session.rollback()  # the next look sees other transactions' commits (SQLite too)
        if not claimed:
            return len(waited)
        waited |= claimed
        if time.monotonic() > deadline:
            log.warning("privacy: erasure of lead %s stopped waiting for sends %s", lead_id,
                        sorted(claimed))
            return len(waited)
        time.sleep(0.05)

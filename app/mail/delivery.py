"""Sending one email: `deliver` is the way every Kindling email outside a nurture sequence
leaves (claim the ledger row → build → send → record), and `transmit`, the provider call under
it, is the one place any email (nurture steps too) is handed to the backend, and logged.

    outcome = mail.deliver(f"asset:{submission.id}", lambda: build_the_email(), lead_id=...)

`deliver` commits. Its outcome says what became of the email: `sent` (now), `done` (sent
before: nothing to do), `failed` (refused for good, or out of attempts: recorded), `unknown`
(the provider may have it: never sent again automatically; the Event Webhook settles it),
`busy` (another worker is sending it right now). A refusal worth retrying raises
`app.jobs.RetryLater` (so call it from an outbox job, which schedules the retry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app

from app.db import db, utcnow
from app.jobs import JobTimeout, RetryLater
from app.mail import ledger
from app.mail.errors import MailError
from app.mail.ledger import DeliveryStatus, MailDelivery
from app.mail.message import Email

log = logging.getLogger("app.mail")


@dataclass
class Delivery:
    status: str  # sent | done | failed | unknown | busy
    row: MailDelivery | None
    message_id: str = ""

    @property
    def error(self) -> str:
        return (self.row.error or "") if self.row is not None else ""


def transmit(email: Email, *, key: str) -> str:
    """Hand `email` to the mail backend; its provider message id. Logs one line per email sent
    (the ledger key, which says what it is, and the message id; never the address)."""
    message_id = current_app.extensions["mail"].send(email)
    log.info("email sent: %s message_id=%s", key, message_id or "-")
    return message_id


def transmit_all(emails: Sequence[tuple[str, Email]], threads: int) -> list[str | Exception]:
    """`transmit` each (key, email), up to `threads` at once (their provider round trips
    overlap); per email, its message id or the exception it raised, in order. The caller has
    claimed each email's ledger row (committed) and records what came back. The threads touch
    no database, only the mail backend (thread-safe)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def one(item: tuple[str, Email]) -> str | Exception:
        with app.app_context():
            try:
                return transmit(item[1], key=item[0])
            except JobTimeout:  # in the job's own thread: its time is up, not this email's
                raise
            except Exception as exc:  # noqa: BLE001 - the caller decides, email by email
                return exc

    if threads <= 1 or len(emails) <= 1:
        return [one(item) for item in emails]
    with ThreadPoolExecutor(max_workers=min(threads, len(emails)),
                            thread_name_prefix="mail-send") as pool:
        return list(pool.map(one, emails))


def deliver(key: str, build: Callable[[], Email], *, lead_id: int | None = None,
            max_attempts: int | None = None) -> Delivery:
    """Send the email `key` names at most once: claim its ledger row (committed), `build()` it,
    send it, record the outcome (committed). Raises RetryLater when the provider refused for
    now and attempts are left (`MAIL_MAX_ATTEMPTS` unless given)."""
    claim = ledger.claim(key, lead_id=lead_id)
    row = claim.row
    if claim.outcome == "wait" and row is not None:
        wait = (row.not_before - utcnow()).total_seconds() if row.not_before else None
        raise RetryLater(f"{key}: the provider asked to wait", after=wait)
    if not claim.ours or row is None:
        return Delivery("done" if claim.outcome == DeliveryStatus.SENT else claim.outcome, row)
    try:
        email = build()
    except Exception as exc:
        # Nothing left: the next attempt may send. The job's own failure says what went wrong.
        ledger.move(row, DeliveryStatus.CLAIMED, status=DeliveryStatus.RETRY.value,
                    error=f"the email could not be built: {type(exc).__name__}: {exc}"[:2000])
        raise
    email.custom_args = {**email.custom_args, ledger.CUSTOM_ARG: str(row.id)}
    row.subject = (email.subject or "")[:300]
    db.session.commit()  # the subject, for the Mail page, whatever happens next
    try:
        message_id = transmit(email, key=key)
    except MailError as exc:
        return refused(row, exc, max_attempts)
    if ledger.move(row, DeliveryStatus.CLAIMED, status=DeliveryStatus.SENT.value,
                   sent_at=utcnow(), error=None,
                   provider_message_id=(message_id or "")[:200] or None):
        return Delivery("sent", row, message_id)
    # A provider event settled it while we waited for the answer: that is the word that counts.
    return Delivery("done" if row.status == DeliveryStatus.SENT else row.status, row)


@dataclass(frozen=True)
class Refusal:
    """What a provider's refusal makes of a claimed ledger row."""

    status: DeliveryStatus  # unknown (it may have it), failed, or retry
    error: str
    retry_after: float | None = None

    def values(self) -> dict[str, object]:
        """The row's new columns (a retry waits `not_before` when the provider said)."""
        values: dict[str, object] = {"status": self.status.value, "error": self.error}
        if self.status == DeliveryStatus.RETRY:
            values["not_before"] = (utcnow() + timedelta(seconds=self.retry_after)
                                    if self.retry_after else None)
        return values


def refusal(key: str, attempts: int, exc: MailError, max_attempts: int | None = None) -> Refusal:
    """The provider did not take the claimed email `key` on its `attempts`th attempt: unknown
    (it may have it), failed (for good, or out of attempts), or retry later. Logs it; the
    caller records it."""
    max_attempts = max_attempts or int(current_app.config["MAIL_MAX_ATTEMPTS"])
    error = str(exc)[:2000]
    if exc.uncertain:
        log.warning("email %s: no answer from the provider; never sent again automatically, "
                    "waiting for its events", key)
        return Refusal(DeliveryStatus.UNKNOWN, error)
    if exc.permanent or attempts >= max_attempts:
        if not exc.permanent:
            error = f"gave up after {attempts} attempts: {error}"[:2000]
        log.warning("email %s failed: %s", key, error)
        return Refusal(DeliveryStatus.FAILED, error)
    log.warning("email %s: attempt %d refused for now (%s); retrying", key, attempts, error)
    return Refusal(DeliveryStatus.RETRY, error, exc.retry_after)


def refused(row: MailDelivery, exc: MailError, max_attempts: int | None = None) -> Delivery:
    """The provider did not take the claimed email `row`: unknown (it may have it), failed, or
    retry later (raises RetryLater). Commits."""
    outcome = refusal(row.key, row.attempts, exc, max_attempts)
    ledger.move(row, DeliveryStatus.CLAIMED, **outcome.values())
    if outcome.status == DeliveryStatus.RETRY:
        raise RetryLater(f"{row.key}: {outcome.error}", after=outcome.retry_after)
    return Delivery(outcome.status.value, row)

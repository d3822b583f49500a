"""Campaign jobs. The email ones run through the outbox (inside its job context), so they are
plain functions taking ids; all are safe to run twice.

- `send_asset_emails(submission_ids)`: the submission listener (a batch of them per job, one
  per intake batch): emails each page's asset link, the batch at once (below);
  `send_asset_email(submission_id)` sends one, as the careful path.
- `resend_asset_email(submission_id, asset_id, key)`: a fresh link asked for on an expired one.
  Both send through the mail ledger (`app.mail.deliver`): at most once per key.
- `on_asset_email_settled(row)`: SendGrid's events settled one whose answer never came.
- `flush_page_views()`: periodic; writes the queued landing-page views (`campaigns.pageviews`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app, render_template
from sqlalchemy.orm import joinedload

from app import mail
from app.db import db, insert_rows, utcnow
from app.jobs import JobTimeout, RetryLater, each, job
from app.leads import bulk_events
from app.leads.event_columns import digest_int
from app.leads.models import Event, Lead
from app.leads.service import events_written, record_event
from app.mail.ledger import CUSTOM_ARG, DeliveryStatus, MailDelivery
from campaigns.models import DELIVERABLE_STATUSES, Asset, LandingPage
from campaigns.tokens import download_url
from forms.models import Submission

log = logging.getLogger(__name__)
_LEDGER = cast(sa.Table, MailDelivery.__table__)


@dataclass
class _Ready:
    """An asset email the batch path sends: built, its ledger row not yet claimed."""

    submission: Submission
    asset: Asset
    key: str
    email: mail.Email
    row_id: int = 0


def send_asset_emails(submission_ids: list[int]) -> list[str | None]:
    """The batch submission listener: the asset email of each submission (as
    `send_asset_email`), per submission its message id or None. A redelivered or retried batch
    sends nothing twice: each email's ledger key (`asset:<submission>`) lets it leave once.

    The common case costs a few statements per MAIL_SEND_THREADS emails, not ~20 per email:
    one read of the submissions, their leads, pages and assets, and of the ledger rows and
    events already there; then, a wave of MAIL_SEND_THREADS emails at a time: the wave's
    ledger rows claimed in one INSERT (skipping any key another run holds) and committed
    before any of them leaves, its provider calls at once, and its answers and events in one
    commit before the next wave is claimed. A worker that dies mid-batch so leaves only the
    wave in flight uncertain (`unknown` once its claims go stale, for the provider's events
    to settle); the later waves were never claimed, and the outbox's retry sends them. A
    provider that asks to wait stops the batch after its wave: the rest waits for the retry.
    An email with a ledger row already (a retry, a redelivery, another worker's) or that
    cannot be built goes through `send_asset_email`, which decides it."""
    ids = list(dict.fromkeys(int(i) for i in submission_ids))
    results: dict[int, str | None] = dict.fromkeys(ids)
    ready, careful = _plan(ids)
    threads = max(1, int(current_app.config.get("MAIL_SEND_THREADS", 8)))
    problem: Exception | None = None
    for start in range(0, len(ready), threads):
        wave = ready[start:start + threads]
        careful += _claim(wave)
        problem = _first(problem, _send_and_record([i for i in wave if i.row_id], results))
        if isinstance(problem, RetryLater):
            break  # the provider asked to wait: the waves not claimed yet wait for the retry
    try:
        for submission_id, outcome in zip(careful, each(careful, send_asset_email)):
            results[submission_id] = outcome
    except JobTimeout:
        raise
    except Exception as exc:  # noqa: BLE001 - raised below (a RetryLater first)
        problem = _first(problem, exc)
    if problem is not None:
        raise problem  # the outbox retries the batch; what was sent stays sent
    return [results[int(i)] for i in submission_ids]


def _first(problem: Exception | None, new: Exception | None) -> Exception | None:
    """The problem the batch raises at its end: a RetryLater (the longest wait) over others,
    else the first."""
    if new is None or problem is None:
        return problem or new
    if isinstance(new, RetryLater) and (
            not isinstance(problem, RetryLater) or (new.after or 0) > (problem.after or 0)):
        return new
    return problem


def _plan(ids: list[int]) -> tuple[list[_Ready], list[int]]:
    """(emails the batch sends, submissions for the careful path), from four reads."""
    submissions = list(db.session.scalars(
        sa.select(Submission).where(Submission.id.in_(ids))
        .options(joinedload(Submission.lead)).order_by(Submission.id)))
    page_ids = {s.landing_page_id for s in submissions if s.landing_page_id}
    pages = {page.id: page for page in db.session.scalars(
        sa.select(LandingPage).where(LandingPage.id.in_(page_ids))
        .options(joinedload(LandingPage.asset)))} if page_ids else {}
    # Stored as a digest (`DedupeDigest`): compare the digests.
    sent_before = set(db.session.scalars(
        sa.select(sa.type_coerce(Event.dedupe_key, sa.BigInteger))
        .where(Event.dedupe_key.in_([f"asset-email:{i}" for i in ids]))))
    claimed_before = set(db.session.scalars(sa.select(MailDelivery.key).where(
        MailDelivery.key.in_([f"asset:{i}" for i in ids]))))
    ready: list[_Ready] = []
    careful: list[int] = []
    for submission in submissions:
        page = pages.get(submission.landing_page_id or 0)
        lead = submission.lead
        if (submission.status not in DELIVERABLE_STATUSES or page is None or page.asset is None
                or not _emailable(lead)
                or digest_int(f"asset-email:{submission.id}") in sent_before):
            continue  # nothing to send (as `send_asset_email` decides)
        key = f"asset:{submission.id}"
        if key in claimed_before:
            careful.append(submission.id)
            continue
        try:
            email = _asset_email(submission, page.asset, page)
        except JobTimeout:
            raise
        except Exception:  # noqa: BLE001 - the careful path builds it again and says why
            careful.append(submission.id)
            continue
        ready.append(_Ready(submission, page.asset, key, email))
    return ready, careful


def _claim(ready: list[_Ready]) -> list[int]:
    """Claim the ledger rows of `ready` in one INSERT, committed: each email has its unique row
    before it leaves. A key another run took meanwhile is skipped here; its submission is
    returned, for the careful path."""
    if not ready:
        return []
    now = utcnow()
    made = dict(insert_rows(_LEDGER, [
        {"key": item.key, "purpose": "asset", "lead_id": item.submission.lead_id,
         "subject": (item.email.subject or "")[:300], "status": DeliveryStatus.CLAIMED.value,
         "attempts": 1, "claimed_at": now, "created_at": now, "updated_at": now}
        for item in ready], (_LEDGER.c.key, _LEDGER.c.id), skip_conflicts=["key"]))
    _commit()
    taken = []
    for item in ready:
        item.row_id = made.get(item.key, 0)
        if item.row_id:
            item.email.custom_args = {**item.email.custom_args,
                                      CUSTOM_ARG: str(item.row_id)}
        else:
            taken.append(item.submission.id)
    return taken


def _commit() -> None:
    """Commit, keeping the batch's read-only objects loaded: the next wave uses them again
    (no reload of each one after every commit)."""
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire


def _send_and_record(wave: list[_Ready], results: dict[int, str | None]) -> Exception | None:
    """Send a wave of claimed emails at once, then record every answer in one commit: `sent`
    (with its `asset_email_sent` event), `retry`, `failed` (with `asset_email_failed`) or
    `unknown`. A row a provider event settled meanwhile keeps what the event said, and gets no
    event from here. Returns the wave's problem (a RetryLater first): the caller raises it
    once the batch is done."""
    if not wave:
        return None
    answers = mail.transmit_all([(item.key, item.email) for item in wave], len(wave))
    now = utcnow()
    claimed = _LEDGER.c.status == DeliveryStatus.CLAIMED.value
    events: list[dict[str, Any]] = []
    problem: Exception | None = None
    message_ids = {item.row_id: (answer or "")[:200] or None
                   for item, answer in zip(wave, answers) if isinstance(answer, str)}
    if message_ids:
        named = {row_id: message_id for row_id, message_id in message_ids.items() if message_id}
        matched = set(db.session.scalars(
            sa.update(_LEDGER).where(_LEDGER.c.id.in_(list(message_ids)), claimed)
            .values(status=DeliveryStatus.SENT.value, sent_at=now, error=None, updated_at=now,
                    provider_message_id=sa.case(named, value=_LEDGER.c.id) if named else None)
            .returning(_LEDGER.c.id)))
        for item in wave:
            if item.row_id in matched:
                message_id = message_ids[item.row_id]
                results[item.submission.id] = message_id
                events.append(_event_row(item, "asset_email_sent", now, {
                    "asset": item.asset.name, "message_id": message_id}))
    for item, reply in zip(wave, answers):
        if isinstance(reply, str):
            continue
        if not isinstance(reply, mail.MailError):  # its row stays claimed: never sent again
            log.error("asset email %s: %s: %s", item.key, type(reply).__name__, reply)
            problem = _first(problem, reply)
            continue
        outcome = mail.refusal(item.key, 1, reply)  # its first attempt: claimed just now
        if db.session.scalar(sa.update(_LEDGER).where(_LEDGER.c.id == item.row_id, claimed)
                             .values(updated_at=now, **outcome.values())
                             .returning(_LEDGER.c.id)) is None:
            continue  # a provider event settled it meanwhile: its word counts
        if outcome.status == DeliveryStatus.RETRY:
            problem = _first(problem, RetryLater(f"{item.key}: {outcome.error}",
                                                 after=outcome.retry_after))
        elif outcome.status == DeliveryStatus.FAILED:
            events.append(_event_row(item, "asset_email_failed", now,
                                     {"error": outcome.error[:500]}, suffix=":failed"))
    # One row per key: one the webhook wrote meanwhile (it settled the email) is skipped.
    leads = set(bulk_events.insert_new(events)) if events else set()
    _commit()
    if leads:
        events_written(leads)
    return problem


def _event_row(item: _Ready, type_: str, now: datetime, data: dict[str, Any], *,
               suffix: str = "") -> dict[str, Any]:
    """An event of the lead's timeline about the email `item`, as `_record` writes it."""
    return {"lead_id": item.submission.lead_id, "type": type_, "occurred_at": now,
            "campaign_id": item.submission.campaign_id, "url": None,
            "data": {"asset_id": item.asset.id, **data, "submission_id": item.submission.id},
            "is_bot": False, "dedupe_key": f"asset-email:{item.submission.id}{suffix}"}


def _emailable(lead: Lead | None) -> bool:
    return lead is not None and lead.unsubscribed_at is None and lead.bounced_at is None


def send_asset_email(submission_id: int) -> str | None:
    """Email the lead of an accepted (or released, or confirmed) submission the download link
    of its landing page's asset. Skips everything else."""
    submission = db.session.get(Submission, submission_id)
    if submission is None or submission.status not in DELIVERABLE_STATUSES:
        return None
    page = db.session.get(LandingPage, submission.landing_page_id) \
        if submission.landing_page_id else None
    if page is None or page.asset is None:
        return None
    return _send(submission, page.asset, page, key=f"asset:{submission.id}",
                 event_key=f"asset-email:{submission.id}")


def resend_asset_email(submission_id: int, asset_id: int, key: str) -> str | None:
    """`key`: `asset-resend:<submission>:<asset>:<hour>` (one fresh link per hour at most)."""
    submission = db.session.get(Submission, submission_id)
    asset = db.session.get(Asset, asset_id)
    if submission is None or asset is None or submission.status not in DELIVERABLE_STATUSES:
        return None
    page = db.session.get(LandingPage, submission.landing_page_id) \
        if submission.landing_page_id else None
    return _send(submission, asset, page, key=key, event_key=key)


def _send(submission: Submission, asset: Asset, page: LandingPage | None, *, key: str,
          event_key: str) -> str | None:
    """Send through the mail ledger (`key`): at most once, and never again after an answer that
    never came. The lead's timeline gets `asset_email_sent` or `asset_email_failed`."""
    lead = submission.lead
    if not _emailable(lead):
        return None
    # Sent before the mail ledger existed (its event is there): nothing to do.
    if db.session.scalar(sa.select(Event.id).where(Event.dedupe_key == event_key)) is not None:
        return None
    outcome = mail.deliver(key, lambda: _asset_email(submission, asset, page),
                           lead_id=submission.lead_id)  # RetryLater: the outbox retries
    return _after(submission, asset, outcome, event_key)


def _asset_email(submission: Submission, asset: Asset, page: LandingPage | None) -> mail.Email:
    lead = submission.lead
    assert lead is not None
    link = download_url(submission.id, asset.id)
    context = {"lead": lead, "asset": asset, "page": page, "link": link,
               "hours": asset.link_ttl_hours,
               "postal_address": current_app.config["POSTAL_ADDRESS"]}
    # Only the validated address goes into a header; the name a lead typed stays in the body.
    return mail.new_email(
        to=lead.email_display or lead.email,
        subject=f"Your download: {asset.name}",
        html=render_template("campaigns/mail/asset.html", **context),
        text=render_template("campaigns/mail/asset.txt", **context),
        categories=["asset"],
        custom_args={"submission_id": str(submission.id), "asset_id": str(asset.id)},
    )


def _after(submission: Submission, asset: Asset, outcome: mail.Delivery,
           event_key: str) -> str | None:
    """The lead's timeline after a send: `asset_email_sent`, or `asset_email_failed` once."""
    if outcome.status == "sent":
        _record(submission, "asset_email_sent", event_key,
                {"asset_id": asset.id, "asset": asset.name, "message_id": outcome.message_id})
        return outcome.message_id
    if outcome.status == "failed":  # once: the event's key is unique
        _record(submission, "asset_email_failed", f"{event_key}:failed",
                {"asset_id": asset.id, "error": outcome.error[:500]})
    return None


def _record(submission: Submission, type_: str, dedupe_key: str, data: dict[str, Any]) -> None:
    record_event(submission.lead, type_, campaign_id=submission.campaign_id,
                 data={**data, "submission_id": submission.id}, dedupe_key=dedupe_key)
    db.session.commit()


def on_asset_email_settled(row: MailDelivery) -> None:
    """A provider event settled an asset email whose answer never came (see
    `app.mail.ledger.add_settled_listener`): the lead's timeline learns what became of it.
    The webhook's transaction commits."""
    parts = row.key.split(":")
    submission = db.session.get(Submission, int(parts[1])) \
        if len(parts) > 1 and parts[1].isdigit() else None
    if submission is None or submission.lead is None:
        return
    event_key = f"asset-email:{submission.id}" if parts[0] == "asset" else row.key
    sent = row.status == DeliveryStatus.SENT
    record_event(submission.lead, "asset_email_sent" if sent else "asset_email_failed",
                 campaign_id=submission.campaign_id,
                 data={"submission_id": submission.id, "message_id": row.provider_message_id,
                       "settled_by": "provider event", "error": row.error},
                 dedupe_key=event_key if sent else f"{event_key}:failed")


@job
def flush_page_views() -> int:
    """Write queued landing-page views as `page_viewed` events (periodic, see
    `campaigns.pageviews`)."""
    from campaigns import pageviews

    return pageviews.flush()

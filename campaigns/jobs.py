"""Campaign jobs. The email ones run through the outbox (inside its job context), so they are
plain functions taking ids; all are safe to run twice.

- `send_asset_emails(submission_ids)`: the submission listener (a batch of them per job);
  `send_asset_email(submission_id)` for each: emails the page's asset link.
- `resend_asset_email(submission_id, asset_id, key)`: a fresh link asked for on an expired one.
  Both send through the mail ledger (`app.mail.deliver`): at most once per key.
- `on_asset_email_settled(row)`: SendGrid's events settled one whose answer never came.
- `flush_page_views()`: periodic; writes the queued landing-page views (`campaigns.pageviews`).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import current_app, render_template

from app import mail
from app.db import db
from app.jobs import each, job
from app.leads.models import Event
from app.leads.service import record_event
from app.mail.ledger import DeliveryStatus, MailDelivery
from campaigns.models import DELIVERABLE_STATUSES, Asset, LandingPage
from campaigns.tokens import download_url
from forms.models import Submission

log = logging.getLogger(__name__)


def send_asset_emails(submission_ids: list[int]) -> list[str | None]:
    """The batch submission listener: `send_asset_email` for each submission, in one job (the
    intake processor writes one per batch). A redelivered or retried batch sends nothing
    twice: each email's ledger key (`asset:<submission>`) lets it leave once."""
    return each(submission_ids, send_asset_email)


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
    if lead is None or lead.unsubscribed_at is not None or lead.bounced_at is not None:
        return None
    # Sent before the mail ledger existed (its event is there): nothing to do.
    if db.session.scalar(sa.select(Event.id).where(Event.dedupe_key == event_key)) is not None:
        return None

    def build() -> mail.Email:
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

    outcome = mail.deliver(key, build, lead_id=lead.id)  # RetryLater: the outbox retries
    if outcome.status == "sent":
        _record(submission, "asset_email_sent", event_key,
                {"asset_id": asset.id, "asset": asset.name, "message_id": outcome.message_id})
        return outcome.message_id
    if outcome.status == "failed":  # once: the event's key is unique
        _record(submission, "asset_email_failed", f"{event_key}:failed",
                {"asset_id": asset.id, "error": outcome.error[:500]})
    return None


def _record(submission: Submission, type_: str, dedupe_key: str, data: dict) -> None:
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

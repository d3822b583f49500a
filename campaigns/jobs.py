"""Campaign jobs. Both run through the outbox (inside its job context), so they are plain
functions taking ids; both are safe to run twice.

- `send_asset_email(submission_id)`: the submission listener; emails the page's asset link.
- `resend_asset_email(submission_id, asset_id, key)`: a fresh link asked for on an expired one.
- `flush_page_views()`: periodic; writes the queued landing-page views (`campaigns.pageviews`).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import current_app, render_template

from app import mail
from app.db import db
from app.jobs import job
from app.leads.models import Event
from app.leads.service import record_event
from app.mail.errors import MailError
from campaigns.models import DELIVERABLE_STATUSES, Asset, LandingPage
from campaigns.tokens import download_url
from forms.models import Submission

log = logging.getLogger(__name__)



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
    return _send(submission, page.asset, page, dedupe_key=f"asset-email:{submission.id}")


def resend_asset_email(submission_id: int, asset_id: int, key: str) -> str | None:
    submission = db.session.get(Submission, submission_id)
    asset = db.session.get(Asset, asset_id)
    if submission is None or asset is None or submission.status not in DELIVERABLE_STATUSES:
        return None
    page = db.session.get(LandingPage, submission.landing_page_id) \
        if submission.landing_page_id else None
    return _send(submission, asset, page, dedupe_key=key)


def _send(submission: Submission, asset: Asset, page: LandingPage | None, *,
          dedupe_key: str) -> str | None:
    lead = submission.lead
    if lead is None or lead.unsubscribed_at is not None or lead.bounced_at is not None:
        return None
    # Checked before sending, written after: a crash between the two can repeat the email
    # (at least once) but a finished send is never repeated.
    if db.session.scalar(sa.select(Event.id).where(Event.dedupe_key == dedupe_key)) is not None:
        return None
    link = download_url(submission.id, asset.id)
    context = {"lead": lead, "asset": asset, "page": page, "link": link,
               "hours": asset.link_ttl_hours,
               "postal_address": current_app.config["POSTAL_ADDRESS"]}
    # Only the validated address goes into a header; the name a lead typed stays in the body.
    email = mail.new_email(
        to=lead.email_display or lead.email,
        subject=f"Your download: {asset.name}",
        html=render_template("campaigns/mail/asset.html", **context),
        text=render_template("campaigns/mail/asset.txt", **context),
        categories=["asset"],
        custom_args={"submission_id": str(submission.id), "asset_id": str(asset.id)},
    )
    try:
        message_id = mail.backend().send(email)
    except MailError as exc:
        if not exc.permanent:
            raise  # the outbox retries later
        log.warning("asset email for submission %s refused: %s", submission.id, exc)
        record_event(lead, "asset_email_failed", campaign_id=submission.campaign_id,
                     data={"asset_id": asset.id, "submission_id": submission.id,
                           "error": str(exc)[:500]},
                     dedupe_key=f"{dedupe_key}:failed")
        db.session.commit()
        return None
    record_event(lead, "asset_email_sent", campaign_id=submission.campaign_id,
                 data={"asset_id": asset.id, "asset": asset.name, "submission_id": submission.id,
                       "message_id": message_id},
                 dedupe_key=dedupe_key)
    db.session.commit()
    return message_id


@job
def flush_page_views() -> int:
    """Write queued landing-page views as `page_viewed` events (periodic, see
    `campaigns.pageviews`)."""
    from campaigns import pageviews

    return pageviews.flush()

"""Gated downloads at /d/<token>: the file (or the marketer's external URL) for a valid link,
a way to get a fresh link emailed when it expired, a refusal when it was tampered with."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    make_response,
    redirect,
    render_template,
    request,
    send_from_directory,
)
from flask_wtf import FlaskForm

from app import outbox
from app.db import db, utcnow
from app.extensions import limiter
from app.leads.service import record_event
from app.machines import machine_reason
from app.outbox import OutboxJob
from campaigns import assets
from campaigns.models import DELIVERABLE_STATUSES, Asset
from campaigns.tokens import (
    Signed,
    SignedIntake,
    download_url,
    load_download,
    load_intake_download,
)
from forms.models import Submission

bp = Blueprint("downloads", __name__, template_folder="templates")


class ResendForm(FlaskForm):
    """Only a CSRF token: the address is never typed, the link goes to the submission's lead."""


@dataclass
class Grant:
    submission: Submission
    asset: Asset
    expired: bool


def _invalid():
    return make_response(render_template("campaigns/download_invalid.html"), 404)


def resolve(token: str) -> Grant | None:
    """What a download token grants, or None when it is forged, tampered or no longer backed
    by a deliverable submission and an existing asset."""
    signed: Signed | SignedIntake | None = load_download(token)
    if signed is not None:
        submission = db.session.get(Submission, signed.first)  # type: ignore[union-attr]
    else:
        signed = load_intake_download(token)
        if signed is None:
            return None
        submission = _from_intake(signed.intake_id)
    asset = db.session.get(Asset, signed.second)
    if submission is None or asset is None or submission.status not in DELIVERABLE_STATUSES \
            or submission.lead is None:
        return None
    return Grant(submission, asset, signed.expired(asset.link_ttl_hours * 3600))


def _from_intake(intake_id: str) -> Submission | None:
    """The submission of a link made at submit time: made now when the visitor is faster
    than the intake processor (the same exactly-once path the worker takes)."""
    from forms import processor

    submission_id = processor.process_one(intake_id)
    return db.session.get(Submission, submission_id) if submission_id is not None else None


def _no_store(response):
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/d/<token>")
def download(token: str):
    grant = resolve(token)
    if grant is None:
        return _invalid()
    if grant.expired:
        html = render_template("campaigns/download_expired.html", form=ResendForm(),
                               token=token, asset=grant.asset)
        return _no_store(make_response(html, 410))
    asset = grant.asset
    if asset.is_file and not assets.file_exists(asset):
        abort(404)
    if not asset.is_file and not asset.external_url:
        abort(404)
    machine = machine_reason()  # a mail scanner opening the link is not a download
    record_event(grant.submission.lead, "asset_downloaded",
                 campaign_id=grant.submission.campaign_id, url=request.path,
                 data={"asset_id": asset.id, "asset": asset.name,
                       "submission_id": grant.submission.id},
                 is_bot=bool(machine), bot_reason=machine)
    db.session.commit()
    if asset.stored_name is not None:  # an uploaded file
        response = send_from_directory(assets.uploads_dir(), asset.stored_name,
                                       as_attachment=True, download_name=asset.filename,
                                       mimetype=asset.content_type or None, max_age=0)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return _no_store(response)
    # Only ever the URL a marketer stored on the asset; nothing from the request.
    return _no_store(redirect(asset.external_url or "/", code=302))


@bp.route("/d/<token>/resend", methods=["POST"])
@limiter.limit("10 per hour", methods=["POST"])
def resend(token: str):
    """Email a fresh link to the lead of the token's submission (at most one per hour)."""
    form = ResendForm()
    if not form.validate_on_submit():
        abort(400)
    grant = resolve(token)
    if grant is None:
        return _invalid()
    key = f"asset-resend:{grant.submission.id}:{grant.asset.id}:{utcnow():%Y%m%d%H}"
    already = db.session.scalar(sa.select(OutboxJob.id).where(OutboxJob.dedupe_key == key))
    if already is None:
        outbox.add("campaigns.jobs.resend_asset_email", grant.submission.id, grant.asset.id, key,
                   queue_name="mail", dedupe_key=key)
        db.session.commit()
    return _no_store(make_response(render_template("campaigns/download_resent.html",
                                                   asset=grant.asset)))


def link_for_lead(asset_id: int, lead_id: int) -> str:
    """A download link for a nurture email (`asset_link()` in templates), backed by the lead's
    latest deliverable submission; empty when the lead never qualified for an asset."""
    submission_id = db.session.scalar(
        sa.select(Submission.id)
        .where(Submission.lead_id == lead_id, Submission.status.in_(DELIVERABLE_STATUSES))
        .order_by(Submission.id.desc()).limit(1)
    )
    if submission_id is None or db.session.get(Asset, asset_id) is None:
        return ""
    return download_url(submission_id, asset_id)

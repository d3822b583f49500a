"""Public landing pages at /p/<slug>: the page, its form, and the thank-you page.

Server-rendered and usable without JavaScript. Draft pages exist only for signed-in marketers
(a preview); archived pages answer 410 with a friendly page.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from app.db import db
from app.leads.service import record_event
from app.machines import machine_reason
from app.visitors import remember, visitor_id
from campaigns.content import render_markdown
from campaigns.models import DELIVERABLE_STATUSES, Campaign, CampaignStatus, LandingPage
from campaigns.tokens import download_token, load_thanks, thanks_token
from forms import hosted
from forms.models import Submission, SubmissionStatus
from forms.pipeline import Context

bp = Blueprint("landing", __name__, template_folder="templates")

THANKS_MAX_AGE = 7 * 24 * 3600  # a thank-you address without an asset


def is_marketer() -> bool:
    return bool(current_user.is_authenticated and current_user.has_role("marketer"))


def find_page(slug: str) -> tuple[LandingPage, bool]:
    """The page at `slug` and whether this is a marketer's preview of a draft. Aborts with
    404 (unknown, or a draft for a visitor) or 410 (archived)."""
    page = db.session.scalar(sa.select(LandingPage).where(LandingPage.slug == slug))
    if page is None:
        abort(404)
    status = page.campaign.status
    if status == CampaignStatus.ARCHIVED.value:
        abort(make_response(render_template("campaigns/gone.html", page=page), 410))
    if status == CampaignStatus.DRAFT.value:
        if not is_marketer():
            abort(404)
        return page, True
    return page, False


def utm_defaults(campaign: Campaign) -> dict[str, str]:
    values = {"utm_source": campaign.utm_source, "utm_medium": campaign.utm_medium,
              "utm_campaign": campaign.utm_campaign}
    return {key: value for key, value in values.items() if value}


@bp.route("/p/<slug>", methods=["GET", "POST"])
@hosted.submit_limit()
def show(slug: str):
    page, preview = find_page(slug)
    form_def = page.form
    if request.method == "POST" and form_def is None:
        abort(405)
    wtform = hosted.build(form_def) if form_def is not None else None
    status = 200
    if request.method == "POST":
        ctx = Context(channel="hosted", campaign_id=page.campaign_id, landing_page_id=page.id,
                      utm_defaults=utm_defaults(page.campaign), visitor_id=visitor_id())
        result = hosted.process(form_def, wtform, ctx)
        if result is not None:
            token = thanks_token(result.submission.id, page.id)
            return remember(redirect(url_for(".thanks", slug=slug, token=token), code=303))
        status = 422  # invalid: the same instance, with every typed value and its errors
    elif not preview:
        machine = machine_reason()  # emailed links lead here: scanners fetch them too
        record_event(None, "page_viewed", visitor_id=None if machine else visitor_id(),
                     url=request.url[:2000], campaign_id=page.campaign_id,
                     data={"landing_page_id": page.id}, is_bot=bool(machine), bot_reason=machine)
        db.session.commit()
    html = render_template("campaigns/page.html", page=page, wtform=wtform, form_def=form_def,
                           body=render_markdown(page.body_markdown), preview=preview,
                           action=url_for(".show", slug=slug))
    return remember(make_response(html, status))


@bp.route("/p/<slug>/thanks/<token>")
def thanks(slug: str, token: str):
    page, preview = find_page(slug)
    signed = load_thanks(token)
    if signed is None or signed.second != page.id:
        abort(404)
    submission = db.session.get(Submission, signed.first)
    if submission is None or submission.landing_page_id != page.id:
        abort(404)
    asset = page.asset
    max_age = asset.link_ttl_hours * 3600 if asset is not None else THANKS_MAX_AGE
    link_expired = signed.expired(max_age)
    download = None
    if asset is not None and submission.status in DELIVERABLE_STATUSES and not link_expired:
        download = url_for("downloads.download", token=download_token(submission.id, asset.id))
    html = render_template(
        "campaigns/thanks.html", page=page, preview=preview, download=download,
        text=render_markdown(page.thank_you_markdown),
        asset=asset if submission.status in DELIVERABLE_STATUSES else None,
        link_expired=link_expired,
        pending=submission.status == SubmissionStatus.PENDING.value,
    )
    response = make_response(html)
    response.headers["Referrer-Policy"] = "no-referrer"  # the address carries a token
    response.headers["Cache-Control"] = "private, no-store"
    return remember(response)

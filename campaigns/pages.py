"""Public landing pages at /p/<slug>: the page, its form, and the thank-you page.

Server-rendered and usable without JavaScript. Draft pages exist only for signed-in marketers
(a preview); archived pages answer 410 with a friendly page.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
from flask import (Blueprint, abort, current_app, make_response, redirect, render_template,
                   request, url_for)
from flask_login import current_user
from sqlalchemy.orm import Session, joinedload, selectinload

from app.db import db
from app.machines import machine_reason
from app.visitors import remember, visitor_id
from campaigns import pageviews
from campaigns.content import render_markdown
from campaigns.models import DELIVERABLE_STATUSES, Asset, Campaign, CampaignStatus, LandingPage
from campaigns.tokens import download_token, load_thanks, thanks_token
from forms import hosted
from forms.models import Form, FormField, Submission, SubmissionStatus
from forms.pipeline import Context

bp = Blueprint("landing", __name__, template_folder="templates")

THANKS_MAX_AGE = 7 * 24 * 3600  # a thank-you address without an asset


def is_marketer() -> bool:
    return bool(current_user.is_authenticated and current_user.has_role("marketer"))


def _page_query(slug: str):
    """The page with its campaign, asset, form and the form's fields (all needed to render
    it or take a submission)."""
    return (sa.select(LandingPage).where(LandingPage.slug == slug)
            .options(joinedload(LandingPage.campaign), joinedload(LandingPage.asset),
                     joinedload(LandingPage.form).joinedload(Form.fields)))


def _load_page(session, slug: str) -> LandingPage | None:
    """One query (the fields are joined, hence `unique`)."""
    return session.execute(_page_query(slug)).unique().scalar_one_or_none()


# Page views read the page, its campaign, form (and fields) and asset from a per-process
# cache: a view then needs no database at all. Entries live `LANDING_PAGE_CACHE_SECONDS`
# (other processes' edits show within that), and any change to those tables flushed by this
# process empties the cache at once. Cached objects are detached and fully loaded, so they are
# only read; submits and thank-you pages always read the database.
_CACHED_MODELS = (LandingPage, Campaign, Form, FormField, Asset)
_cache_lock = threading.Lock()


def _page_cache() -> dict:
    return current_app.extensions.setdefault("landing_page_cache", {})


def _cached_page(slug: str) -> LandingPage | None:
    ttl = float(current_app.config.get("LANDING_PAGE_CACHE_SECONDS", 0) or 0)
    if ttl <= 0:
        return _load_page(db.session, slug)
    cache = _page_cache()
    now = time.monotonic()
    hit = cache.get(slug)
    if hit is not None and hit[0] > now:
        return hit[1]
    generation = cache.get(None, 0)
    # Its own short session: nothing this request does (a commit) can expire these objects.
    with Session(db.engine, expire_on_commit=False) as session:
        page = _load_page(session, slug)  # closing ends the transaction, no expiry
    with _cache_lock:
        if cache.get(None, 0) == generation:  # no change flushed meanwhile
            if len(cache) > 1000:  # many slugs (404s): start again, same generation
                cache.clear()
                cache[None] = generation
            cache[slug] = (now + ttl, page)
    return page


@sa.event.listens_for(Session, "after_flush")
def _forget_pages(session: Session, flush_context) -> None:
    """A flushed change to a page, campaign, form, field or asset empties the cache."""
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, _CACHED_MODELS):
            try:
                cache = _page_cache()
            except RuntimeError:  # no app context: nothing cached here
                return
            with _cache_lock:
                generation = cache.get(None, 0) + 1
                cache.clear()
                cache[None] = generation
            return


def find_page(slug: str, *, cached: bool = False) -> tuple[LandingPage, bool]:
    """The page at `slug` and whether this is a marketer's preview of a draft. Aborts with
    404 (unknown, or a draft for a visitor) or 410 (archived). `cached`: a read-only copy
    from the per-process cache (page views)."""
    page = _cached_page(slug) if cached else _load_page(db.session, slug)
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
    page, preview = find_page(slug, cached=request.method != "POST")
    form_def = page.form
    if request.method == "POST" and form_def is None:
        abort(405)
    wtform = hosted.build(form_def) if form_def is not None else None
    status = 200
    if request.method == "POST":
        ctx = Context(channel="hosted", campaign_id=page.campaign_id, landing_page_id=page.id,
                      utm_defaults=utm_defaults(page.campaign), visitor_id=visitor_id())
        page_id = page.id  # the commit in `process` expires the page
        result = hosted.process(form_def, wtform, ctx)
        if result is not None:
            token = thanks_token(result.submission_id or result.submission.id, page_id)
            return remember(redirect(url_for(".thanks", slug=slug, token=token), code=303))
        status = 422  # invalid: the same instance, with every typed value and its errors
    elif not preview:
        machine = machine_reason()  # emailed links lead here: scanners fetch them too
        # Queued on Redis and written in batches (campaigns.pageviews), not in this request.
        if not pageviews.record(url=request.url, campaign_id=page.campaign_id,
                                landing_page_id=page.id,
                                visitor_id=None if machine else visitor_id(), bot_reason=machine):
            db.session.commit()  # Redis was away: written here instead
    form_html = hosted.render(wtform, form_def, url_for(".show", slug=slug)) \
        if wtform is not None else None
    html = render_template("campaigns/page.html", page=page, wtform=wtform, form_def=form_def,
                           form_html=form_html,
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

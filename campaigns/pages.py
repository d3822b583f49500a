"""Public landing pages at /p/<slug>: the page, its form, and the thank-you page.

Server-rendered and usable without JavaScript. Draft pages exist only for signed-in marketers
(a preview); archived pages answer 410 with a friendly page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from app.db import db
from app.extensions import csrf
from app.machines import machine_reason
from app.visitors import remember, visitor_id
from campaigns import pagecache, pageviews
from campaigns.content import render_markdown
from campaigns.models import DELIVERABLE_STATUSES, Campaign, CampaignStatus, LandingPage
from campaigns.tokens import intake_download_token, load_receipt, receipt_token
from forms import hosted, intake, spill
from forms.models import Form, Intake, Submission, SubmissionStatus
from forms.pipeline import Context

bp = Blueprint("landing", __name__, template_folder="templates")

THANKS_MAX_AGE = 7 * 24 * 3600  # a thank-you address without an asset


def is_marketer() -> bool:
    return bool(current_user.is_authenticated and current_user.has_role("marketer"))


def find_page(slug: str, *, cached: bool = False) -> tuple[LandingPage, bool]:
    """The page at `slug` and whether this is a marketer's preview of a draft. Aborts with
    404 (unknown, or a draft for a visitor) or 410 (archived). `cached`: a read-only copy
    from the per-process cache (page views)."""
    page = pagecache.cached_page(slug) if cached else pagecache.load_page(db.session, slug)
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
    if request.method == "POST":
        return _submit(slug)
    generation = pagecache.generation()  # before the page is read: see `pagecache.keep_rendered`
    page, preview = find_page(slug, cached=True)
    if preview:  # a marketer's draft: never stored by anyone
        wtform = hosted.build(page.form) if page.form is not None else None
        response = make_response(_render(page, wtform, True))
        response.headers["Cache-Control"] = "private, no-store"
        return response
    return _public(_rendered(slug, page, generation))


csrf.exempt(show)  # public lead forms: no session, no token; `forms.origin` checks the post


def _submit(slug: str):
    page, preview = find_page(slug, cached=True)  # no read: a refusing database still takes it
    form_def = page.form
    if form_def is None:
        abort(405)
    wtform = hosted.build(form_def, signed=False)  # signed only if it is shown again
    ctx = Context(channel="hosted", campaign_id=page.campaign_id, landing_page_id=page.id,
                  utm_defaults=utm_defaults(page.campaign), visitor_id=visitor_id())
    page_id = page.id  # the commit in `process` expires the page
    result = hosted.process(form_def, wtform, ctx)
    if result is not None:
        token = receipt_token(result.intake_id, page_id)
        return remember(redirect(url_for(".thanks", slug=slug, token=token), code=303))
    # Invalid: the same instance, with every typed value and its errors, and a new render time.
    hosted.sign(form_def, wtform)
    response = make_response(_render(page, wtform, preview), 422)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _render(page: LandingPage, wtform, preview: bool) -> str:
    return render_template("campaigns/page.html", page=page, wtform=wtform, form_def=page.form,
                           body=render_markdown(page.body_markdown), preview=preview,
                           action=url_for(".show", slug=page.slug))


def _rendered(slug: str, page: LandingPage, generation: int) -> pagecache.Rendered:
    """The live page's answer, made from `page` (the cached copy) on a miss."""
    rendered = pagecache.rendered_for(slug)
    if rendered is not None:
        return rendered
    wtform = hosted.build(page.form) if page.form is not None else None
    # Without the app's context processors: they read the session (the signed-in user), and
    # a response that read the session varies by cookie and would not be the same for all.
    body = current_app.jinja_env.get_template("campaigns/page.html").render(
        page=page, wtform=wtform, form_def=page.form, body=render_markdown(page.body_markdown),
        preview=False, action=url_for(".show", slug=page.slug)).encode()
    rendered = pagecache.Rendered(body=body, etag=hashlib.sha256(body).hexdigest()[:32])
    pagecache.keep_rendered(slug, rendered, generation)
    return rendered


def _public(rendered: pagecache.Rendered):
    """The same bytes for every visitor: cacheable by nginx or a CDN for
    `LANDING_PAGE_CACHE_SECONDS`, revalidated by its ETag (304)."""
    response = make_response(rendered.body)
    max_age = int(current_app.config.get("LANDING_PAGE_CACHE_SECONDS", 0) or 0)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.set_etag(rendered.etag)
    return response.make_conditional(request)


def record_beacon_view(args: Mapping[str, str], url: str, vid: str | None) -> bool:
    """A view of one of our landing pages reported by its script's beacon (`/t/v.gif?lp=<id>`):
    queued as `page_viewed`. False for any other page (the beacon counts a site visit)."""
    page_id = args.get("lp", "")
    if not page_id.isdigit() or len(page_id) > 12:
        return False
    machine = machine_reason()  # emailed links lead here: scanners fetch them too
    # Queued on Redis and written in batches (campaigns.pageviews), not in this request.
    pageviews.record(url=url, campaign_id=None, landing_page_id=int(page_id),
                     visitor_id=None if machine else vid, bot_reason=machine)
    return True


@bp.route("/p/<slug>/thanks/<token>")
def thanks(slug: str, token: str):
    """From the intake id alone: it works before the intake processor has run (the status is
    then the one the processor will give), and while the database refuses (a spilled submit, or
    one stored just before)."""
    page, preview = find_page(slug, cached=True)
    signed = load_receipt(token)
    if signed is None or signed.second != page.id:
        abort(404)
    status = _receipt_status(signed.intake_id, page.id, page.form_id)
    if status is None:
        abort(404)
    asset = page.asset
    max_age = asset.link_ttl_hours * 3600 if asset is not None else THANKS_MAX_AGE
    link_expired = signed.expired(max_age)
    deliverable = status in DELIVERABLE_STATUSES
    download = None
    if asset is not None and deliverable and not link_expired:
        download = url_for("downloads.download",
                           token=intake_download_token(signed.intake_id, asset.id,
                                                       signed.signed_at))
    html = render_template(
        "campaigns/thanks.html", page=page, preview=preview, download=download,
        text=render_markdown(page.thank_you_markdown),
        asset=asset if deliverable else None, link_expired=link_expired,
        pending=status == SubmissionStatus.PENDING.value,
    )
    response = make_response(html)
    response.headers["Referrer-Policy"] = "no-referrer"  # the address carries a token
    response.headers["Cache-Control"] = "private, no-store"
    return remember(response)


def _receipt_status(intake_id: str, page_id: int, form_id: int | None) -> str | None:
    """The submission's status (or the one it will get), None for no such submit here. The
    row may be of another page of this form: the same post within the duplicate window is the
    first row, wherever it was posted."""
    try:
        row = db.session.get(Intake, intake_id)
        if row is None:
            # The receipt is ours (signed, for this page): the submit was taken. Not in the
            # journal and not in the table, it was a spilled repeat of a post already stored
            # (a double-click while the database refused), or its lead has been erased since:
            # the visitor is thanked, without a download.
            return "spilled" if spill.holds(intake_id) else "taken"
        if row.landing_page_id != page_id and row.form_id != form_id:
            return None
        if row.submission_id is not None:
            submission = db.session.get(Submission, row.submission_id)
            return submission.status if submission is not None else None
        form = db.session.get(Form, row.form_id)
        if form is None:
            return None
        return intake.expected_status(form, row.suspect_reason)
    except intake.REFUSED:
        # The database refuses now (or every pooled connection is busy). The receipt is ours (signed, for this page): the submit
        # was taken, into the journal or into the intake table before the outage. Either way
        # the visitor gets the thank-you page (the download link waits for the database).
        db.session.rollback()
        return "spilled" if spill.holds(intake_id) else "unreadable"

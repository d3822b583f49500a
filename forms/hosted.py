"""The hosted submit path: a form rendered on one of our pages and posted back to it.

Campaign landing pages call `build` to render and `process` to submit; the visitor never loses
what they typed: an invalid post re-renders the same form instance with its values and errors.

A fresh render is the same bytes for every visitor (a CDN may serve it): no CSRF token, no
session, no per-visitor value. The only dynamic value is the signed render time (`ts`, to the
second), which is part of the cached page. The page's script (`/t/v.js`) fills the browser's
time zone, the referrer, the landing address and the query string's values into the hidden
fields; without JavaScript, `process` reads the landing address and its query string from the
post's own `Referer`. Cross-site posts are refused by `forms.origin` instead of a token.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

from flask import abort, current_app, make_response, render_template, request
from flask_wtf import FlaskForm

from app.extensions import form_limiter
from app.visitors import visitor_id
from forms import intake, origin, pipeline, spam
from forms.builder import TIMESTAMP, TRACKING_FIELDS, form_class
from forms.models import Form


def client_ip() -> str:
    return (request.remote_addr or "")[:45]


def build(form: Form, *, signed: bool = True) -> FlaskForm:
    """A form instance bound to this request's post (on POST), without a CSRF token. On GET its
    hidden values stay empty: the page's script fills them in the visitor's browser.
    `signed=False`: without a fresh render time (a post's own is checked by `process`; `sign`
    it before rendering the instance again)."""
    instance = form_class(form)(meta={"csrf": False})
    if signed:
        sign(form, instance)
    return instance


def sign(form: Form, instance: FlaskForm) -> None:
    """Give `instance` a fresh signed render time, to the second: renders within one second
    are the same bytes."""
    getattr(instance, TIMESTAMP).data = spam.render_token(form, now=float(int(time.time())))


def refuse_cross_site(form: Form) -> None:
    """403 with a page that says why, for a post another site made a browser send."""
    why = origin.refusal(form.allowed_origins or [])
    if why is None:
        return
    current_app.logger.info("form %s: cross-site post refused (%s)", form.id, why)
    html = render_template(
        "error.html", title="Not sent from this site",
        text="This form can only be sent from its own page. Please open the page and "
             "submit the form there.")
    abort(make_response(html, 403))


def _from_referer(instance: FlaskForm) -> None:
    """Without the page's script the hidden fields come back empty: the post's own `Referer`
    (the landing address, same site only) gives the landing URL and its query string."""
    referer = request.referrer or ""
    parts = urlsplit(referer)
    if not parts.scheme or origin.normalise(f"{parts.scheme}://{parts.netloc}") \
            not in origin.own_origins():
        return
    query = dict(parse_qsl(parts.query))
    landing = instance.landing_url
    if not (landing.data or "").strip():
        landing.data = referer[:2000]
    limits = {name: 200 for name in TRACKING_FIELDS if name not in ("referrer", "landing_url")}
    limits.update(dict(instance.query_fields))
    for name, max_length in limits.items():
        field = getattr(instance, name)
        if not (field.data or "").strip() and query.get(name):
            field.data = query[name][:max_length]


def _clip_query_fields(instance: FlaskForm) -> None:
    """A hidden field filled from a long query string is cut to its length, not an error."""
    for name, max_length in instance.query_fields:
        field = getattr(instance, name)
        if isinstance(field.data, str):
            field.data = field.data[:max_length]


def process(form: Form, instance: FlaskForm, ctx: pipeline.Context) -> intake.Receipt | None:
    """Refuse cross-site posts, validate, and store the submit as one intake row (the intake
    processor makes the lead). None when invalid: `instance` then carries the errors and
    values."""
    refuse_cross_site(form)
    posted_ts = request.form.get(TIMESTAMP, "")
    _from_referer(instance)
    _clip_query_fields(instance)
    if not instance.validate():
        return None
    data = dict(instance.data)
    data[TIMESTAMP] = posted_ts  # validate the timestamp the page was rendered with
    reason = spam.suspicion(form, data, spam.email_domain(str(data.get("email") or "")))
    ctx.ip = ctx.ip or client_ip()
    ctx.user_agent = ctx.user_agent or request.headers.get("User-Agent", "")
    ctx.visitor_id = ctx.visitor_id or visitor_id()
    return intake.receive(form, data, request.form.to_dict(flat=True), ctx, reason)


def submit_limit():
    """Per-IP rate limit for submit routes (Flask-Limiter on Redis, one round trip: no
    X-RateLimit-* headers, see `app.extensions.form_limiter`): `@submit_limit()`."""
    return form_limiter.limit(lambda: current_app.config["FORM_RATE_LIMIT"], methods=["POST"])

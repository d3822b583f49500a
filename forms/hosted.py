"""The hosted submit path: a form rendered on one of our pages, posted back with a CSRF token.

Campaign landing pages call `build` to render and `process` to submit; the visitor never loses
what they typed: an invalid post re-renders the same form instance with its values and errors.
"""

from __future__ import annotations

from flask import current_app, request
from flask_wtf import FlaskForm

from app.extensions import limiter
from app.visitors import visitor_id
from forms import pipeline, spam
from forms.builder import TIMESTAMP, TRACKING_FIELDS, form_class
from forms.models import FieldType, Form


def client_ip() -> str:
    return (request.remote_addr or "")[:45]


def build(form: Form) -> FlaskForm:
    """A form instance bound to this request: posted data on POST, fresh tracking values on GET."""
    instance = form_class(form)()
    if request.method != "POST":
        for name in TRACKING_FIELDS:
            getattr(instance, name).data = _tracking_value(name)
        for spec in form.fields:  # marketer-defined hidden fields take the query string's value
            if spec.type == FieldType.HIDDEN.value:
                value = request.args.get(spec.name) or ""
                getattr(instance, spec.name).data = value[:spec.max_length]
    # A fresh render time on every render, including the re-render after an error.
    getattr(instance, TIMESTAMP).data = spam.render_token(form)
    return instance


def _tracking_value(name: str) -> str:
    if name == "referrer":
        return (request.referrer or "")[:2000]
    if name == "landing_url":
        return request.url[:2000]
    return (request.args.get(name) or "")[:200]


def process(form: Form, instance: FlaskForm, ctx: pipeline.Context) -> pipeline.Result | None:
    """Validate and submit. None when invalid: `instance` then carries the errors and values."""
    posted_ts = request.form.get(TIMESTAMP, "")
    if not instance.validate_on_submit():
        return None
    data = dict(instance.data)
    data[TIMESTAMP] = posted_ts  # validate the timestamp the page was rendered with
    reason = spam.suspicion(form, data, spam.email_domain(str(data.get("email") or "")))
    ctx.ip = ctx.ip or client_ip()
    ctx.user_agent = ctx.user_agent or request.headers.get("User-Agent", "")
    ctx.visitor_id = ctx.visitor_id or visitor_id()
    return pipeline.submit(form, data, request.form.to_dict(flat=True), ctx, reason)


def submit_limit():
    """Per-IP rate limit for submit routes (Flask-Limiter on Redis): `@submit_limit()`."""
    return limiter.limit(lambda: current_app.config["FORM_RATE_LIMIT"], methods=["POST"])

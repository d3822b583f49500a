"""The hosted submit path: a form rendered on one of our pages, posted back with a CSRF token.

Campaign landing pages call `build` to render and `process` to submit; the visitor never loses
what they typed: an invalid post re-renders the same form instance with its values and errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from flask import current_app, request
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import escape

from app.extensions import limiter
from app.visitors import visitor_id
from forms import pipeline, spam
from forms.builder import TIMESTAMP, TRACKING_FIELDS, form_class
from forms.models import Form


def client_ip() -> str:
    return (request.remote_addr or "")[:45]


def build(form: Form) -> FlaskForm:
    """A form instance bound to this request: posted data on POST, fresh tracking values on GET."""
    instance = form_class(form)()
    if request.method != "POST":
        for name in TRACKING_FIELDS:
            getattr(instance, name).data = _tracking_value(name)
        # Marketer-defined hidden fields take the query string's value (known from the cached
        # class, so a page view does not load the field definitions).
        for name, max_length in instance.query_fields:
            getattr(instance, name).data = _query_value(name, max_length)
    # A fresh render time on every render, including the re-render after an error.
    getattr(instance, TIMESTAMP).data = spam.render_token(form)
    return instance


# A fresh (GET) render of a form is the same markup every time except for the values of its
# per-request fields: the CSRF token, the tracking fields, query-string hidden fields and the
# render time. `cut` renders once with a marker in each of those values and keeps the text
# between them; `fill` then only escapes one request's values into place (campaigns.pagecache).
_SLOT = "\x1ekindling-slot-{}\x1e"
_SLOT_RE = re.compile("\x1ekindling-slot-(\\d+)\x1e")
CSRF = "csrf_token"


def slot_names(instance: FlaskForm) -> tuple[str, ...]:
    names = [] if getattr(instance, CSRF, None) is None else [CSRF]
    names += [*TRACKING_FIELDS, *(name for name, _ in instance.query_fields), TIMESTAMP]
    return tuple(names)


def cut(instance: FlaskForm, render: Callable[[], str]) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """`render()` with markers as `instance`'s slot values: (texts, slot order), or None when the
    markup does not show each slot exactly once (then it is never cut)."""
    slots = [getattr(instance, name) for name in slot_names(instance)]
    saved = []
    for position, f in enumerate(slots):
        marker = _SLOT.format(position)
        if f.name == CSRF:
            saved.append(f.current_token)
            f.current_token = marker
        else:
            saved.append(f.data)
            f.data = marker
    try:
        html = str(render())
    finally:
        for f, value in zip(slots, saved):
            if f.name == CSRF:
                f.current_token = value
            else:
                f.data = value
    pieces = _SLOT_RE.split(html)
    texts, order = tuple(pieces[0::2]), tuple(int(i) for i in pieces[1::2])
    if sorted(order) != list(range(len(slots))):
        return None
    return texts, order


def fresh_values(slots: tuple[str, ...], query_fields: Iterable[tuple[str, int]],
                 form: Form) -> list[str]:
    """This request's value of each slot, as `build` sets them on a GET."""
    limits = dict(query_fields)
    values = []
    for name in slots:
        if name == CSRF:
            values.append(generate_csrf())
        elif name == TIMESTAMP:
            values.append(spam.render_token(form))
        elif name in limits:
            values.append(_query_value(name, limits[name]))
        else:
            values.append(_tracking_value(name))
    return values


def fill(texts: tuple[str, ...], order: tuple[int, ...], values: list[str]) -> str:
    """The cut markup with `values` escaped into place as WTForms escapes attribute values
    (markupsafe's `escape`, which leaves no quote unescaped)."""
    out = [texts[0]]
    for slot, text in zip(order, texts[1:]):
        out.append(str(escape(values[slot])))
        out.append(text)
    return "".join(out)


def _tracking_value(name: str) -> str:
    if name == "referrer":
        return (request.referrer or "")[:2000]
    if name == "landing_url":
        return request.url[:2000]
    return (request.args.get(name) or "")[:200]


def _query_value(name: str, max_length: int) -> str:
    return (request.args.get(name) or "")[:max_length]


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

"""The hosted submit path: a form rendered on one of our pages, posted back with a CSRF token.

Campaign landing pages call `build` to render and `process` to submit; the visitor never loses
what they typed: an invalid post re-renders the same form instance with its values and errors.
"""

from __future__ import annotations

import re
import threading
import weakref

from flask import current_app, request
from flask_wtf import FlaskForm
from markupsafe import Markup, escape

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
            value = request.args.get(name) or ""
            getattr(instance, name).data = value[:max_length]
    # A fresh render time on every render, including the re-render after an error.
    getattr(instance, TIMESTAMP).data = spam.render_token(form)
    return instance


# A fresh (GET) render of a form class is the same markup every time except for the values of
# its per-request fields (CSRF token, tracking fields, query-string hidden fields, render
# time). It is rendered once through the template with a marker in each of those values and
# kept as the text between the markers; a render then only escapes the values into place.
_SLOT = "\x1ekindling-slot-{}\x1e"
_SLOT_RE = re.compile("\x1ekindling-slot-(\\d+)\x1e")
_fresh: "weakref.WeakKeyDictionary[type, dict[tuple, tuple | None]]" = weakref.WeakKeyDictionary()
_fresh_lock = threading.Lock()


def _slot_fields(instance: FlaskForm) -> list:
    names = [] if getattr(instance, "csrf_token", None) is None else ["csrf_token"]
    names += [*TRACKING_FIELDS, *(name for name, _ in instance.query_fields), TIMESTAMP]
    return [getattr(instance, name) for name in names]


def _attr(value: str) -> str:
    """A value escaped exactly as WTForms' `html_params` escapes attribute values."""
    return str(escape(value).replace(Markup('"'), Markup("&quot;")))


def _cut(instance: FlaskForm, macro, form: Form, action: str, slots: list) -> tuple | None:
    """Render `instance` with markers as its slot values: (texts, slot order), or None when the
    markup does not show each slot exactly once (then it is never cached)."""
    saved = []
    for position, f in enumerate(slots):
        marker = _SLOT.format(position)
        if f.name == "csrf_token":
            saved.append(f.current_token)
            f.current_token = marker
        else:
            saved.append(f.data)
            f.data = marker
    try:
        html = str(macro(instance, form, action))
    finally:
        for f, value in zip(slots, saved):
            if f.name == "csrf_token":
                f.current_token = value
            else:
                f.data = value
    pieces = _SLOT_RE.split(html)
    texts, order = tuple(pieces[0::2]), tuple(int(i) for i in pieces[1::2])
    if sorted(order) != list(range(len(slots))):
        return None
    return texts, order


def render(instance: FlaskForm, form: Form, action: str) -> Markup:
    """The form's markup (the `render_form` macro), from the cut-up fresh render on a GET."""
    template = current_app.jinja_env.get_template("forms/_render.html")
    macro = template.module.render_form
    if request.method != "GET" or instance.errors:
        return macro(instance, form, action)
    slots = _slot_fields(instance)
    key = (template, action, form.submit_label, tuple(f.name for f in slots))
    cuts = _fresh.get(type(instance))
    cut = cuts.get(key, False) if cuts is not None else False
    if cut is False:
        cut = _cut(instance, macro, form, action, slots)
        with _fresh_lock:
            per_class = _fresh.setdefault(type(instance), {})
            if len(per_class) > 64:  # many actions or reloaded templates: start again
                per_class.clear()
            per_class[key] = cut
    if cut is None:
        return macro(instance, form, action)
    texts, order = cut
    out = [texts[0]]
    for slot, text in zip(order, texts[1:]):
        out.append(_attr(slots[slot]._value()))
        out.append(text)
    return Markup("".join(out))


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

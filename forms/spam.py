"""Spam defence that never creates a lead: suspects are quarantined, never turned into leads.

- a honeypot field no person sees;
- a signed render timestamp: a submit within `min_submit_seconds` of rendering is a bot, and a
  missing, forged or stale timestamp is suspect too;
- blocked email domains per form.
The per-IP rate limit (Flask-Limiter) lives on the submit routes.

Two token flavours share the checks, each with its own salt: the hidden `ts` field of hosted
pages (beside the CSRF token), and the embed token of the JSON API (instead of a CSRF token).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.leads.service import InvalidEmail
from forms.builder import HONEYPOT, TIMESTAMP, normalised_email
from forms.models import Form

SALT = "kindling.form-render"
EMBED_SALT = "kindling.embed"


def _serializer(salt: str) -> URLSafeSerializer:
    return _serializer_for(current_app.config["SECRET_KEY"], salt)


@lru_cache(maxsize=16)  # every page view signs a render time: build the serializer once
def _serializer_for(secret_key: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=salt)


def render_token(form: Form, now: float | None = None, salt: str = SALT) -> str:
    """A signed [form id, render time]: a bot can neither backdate it nor reuse it elsewhere."""
    return _serializer(salt).dumps([form.id, round(now if now is not None else time.time(), 3)])


def embed_token(form: Form, now: float | None = None) -> str:
    """The token the JSON API hands to embedded forms (replaces CSRF, carries the render time)."""
    return render_token(form, now, salt=EMBED_SALT)


def email_domain(email: str) -> str:
    """The domain of an address, normalised like the lead's identity when the address is valid."""
    try:
        email = normalised_email(email or "")[0]
    except InvalidEmail:
        email = (email or "").strip().lower()
    return email.rpartition("@")[2]


def suspicion(form: Form, data: Mapping[str, Any], email_domain: str,
              now: float | None = None, salt: str = SALT) -> str | None:
    """Why this submission looks automated, or None when it looks like a person."""
    if str(data.get(HONEYPOT) or "").strip():
        return "honeypot field filled"
    token = data.get(TIMESTAMP) or ""
    try:
        form_id, rendered = _serializer(salt).loads(token)
        rendered = float(rendered)
    except (BadSignature, ValueError, TypeError):
        return "missing or forged form token"
    if form_id != form.id:
        return "form token from another form"
    elapsed = (now if now is not None else time.time()) - rendered
    if elapsed < form.min_submit_seconds:
        return f"submitted {max(elapsed, 0):.1f}s after the form was shown"
    max_age = current_app.config.get("WTF_CSRF_TIME_LIMIT")
    if max_age and elapsed > float(max_age):
        return "form token too old"
    blocked = {d.strip().lower().lstrip("@") for d in (form.blocked_domains or []) if d.strip()}
    if email_domain and any(email_domain == d or email_domain.endswith("." + d) for d in blocked):
        return f"blocked email domain {email_domain}"
    return None

"""The first-party visitor cookie: one random id per browser, so anonymous page views can join
a lead's timeline once that browser submits a form or clicks a tracked link."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask, Request, current_app, g, request
from werkzeug.wrappers import Response

R = TypeVar("R", bound=Response)

COOKIE = "kv"
MAX_AGE = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days
_VALID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def visitor_id(req: Request | None = None) -> str:
    """This browser's visitor id; a new one (set on the response by `remember`) if it has none."""
    req = req or request
    existing = req.cookies.get(COOKIE, "")
    if _VALID.match(existing):
        return existing
    if "new_visitor_id" not in g:
        g.new_visitor_id = secrets.token_urlsafe(18)
    return g.new_visitor_id


def secure(config: Mapping[str, Any], scheme: str) -> bool:
    """Whether the visitor cookie is Secure: over https, and always in production (which sets
    SESSION_COOKIE_SECURE), where TLS often ends at a proxy that speaks http to the app."""
    return scheme == "https" or bool(config.get("SESSION_COOKIE_SECURE"))


def remember(response: R, vid: str | None = None) -> R:
    """Set (or refresh) the visitor cookie on `response`."""
    response.set_cookie(COOKIE, vid or visitor_id(), max_age=MAX_AGE, httponly=True,
                        samesite="Lax", secure=secure(current_app.config, request.scheme))
    return response


# (query args, page address, visitor id or None) -> True when the listener counted the view.
BeaconListener = Callable[[Mapping[str, str], str, "str | None"], bool]


def add_beacon_listener(app: Flask, listener: BeaconListener) -> None:
    """Let a package count a page view reported by the site script's beacon (`/t/v.gif`) as
    its own (a landing page's `page_viewed`) instead of a site visit."""
    listeners = app.extensions.setdefault("visit_beacon_listeners", [])
    if listener not in listeners:
        listeners.append(listener)


def beacon_claimed(args: Mapping[str, str], url: str, vid: str | None) -> bool:
    """True when a registered listener counted this beacon hit."""
    return any(listener(args, url, vid)
               for listener in current_app.extensions.get("visit_beacon_listeners", []))

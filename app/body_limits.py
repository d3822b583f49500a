"""Request size limits raised for one endpoint (a file upload), before anything reads the body.

The app-wide `MAX_CONTENT_LENGTH` stays small. An upload page that takes more registers its
limit here: the check runs first of all `before_request` functions, because CSRF protection
parses the form (and so applies the limit in force) before any blueprint hook would run.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, request

_KEY = "kindling_body_limits"


def add_body_limit(app: Flask, endpoint: str, limit: Callable[[], int]) -> None:
    """POSTs to `endpoint` may carry up to `limit()` bytes (asked per request)."""
    limits: dict[str, Callable[[], int]] | None = app.extensions.get(_KEY)
    if limits is None:
        limits = app.extensions[_KEY] = {}
        app.before_request_funcs.setdefault(None, []).insert(0, _raise_limit)
    limits[endpoint] = limit


def _raise_limit() -> None:
    if request.method != "POST" or request.endpoint is None:
        return
    limit = current_app.extensions[_KEY].get(request.endpoint)
    if limit is not None:
        request.max_content_length = limit()

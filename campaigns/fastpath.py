"""Views of live landing pages answered before Flask, from their cached render.

A view of a live page is the same bytes for every visitor (`campaigns.pagecache.Rendered`),
so once it is rendered nothing of the application is needed to answer it again: not the
request context, the session, the rate limiters' bookkeeping, CSRF or the login hooks. This
WSGI middleware sits in front of the Flask app (like the tracking fast path) and answers
`GET|HEAD /p/<slug>` while the page's render is fresh in this process: the same status, body
and headers the view gives (`campaigns.pages._public` and `app.security_headers`), `304` to a
matching `If-None-Match`. Anything else (a miss, a draft, a post, a thank-you page) goes to
Flask unchanged, and the view renders and keeps the page for the next visitor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import http_date, is_resource_modified, quote_etag

from app import security_headers
from campaigns import pagecache

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PREFIX = "/p/"


class LandingFastPath:
    def __init__(self, app: Flask, wsgi_app: WSGIApp):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO") or ""
        if path.startswith(PREFIX) and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            slug = path[len(PREFIX):]
            if slug and "/" not in slug:
                rendered = pagecache.rendered_for(slug, self.app)
                if rendered is not None:
                    return self._answer(rendered, path, environ, start_response)
        return self.wsgi_app(environ, start_response)

    def _answer(self, rendered: pagecache.Rendered, path: str, environ: dict[str, Any],
                start_response: Callable[..., Any]) -> Iterable[bytes]:
        config = self.app.config
        max_age = int(config.get("LANDING_PAGE_CACHE_SECONDS", 0) or 0)
        headers = [("Cache-Control", f"public, max-age={max_age}"),
                   ("ETag", quote_etag(rendered.etag)), ("Date", http_date()),
                   *security_headers.public_headers(config, path)]
        if not is_resource_modified(environ, etag=rendered.etag):
            start_response("304 NOT MODIFIED", headers)
            return []
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(rendered.body))), *headers])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [rendered.body]


def install(app: Flask) -> None:
    app.wsgi_app = LandingFastPath(app, app.wsgi_app)  # type: ignore[method-assign]

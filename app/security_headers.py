"""Security headers on every answer, from one small `after_request` (not Flask-Talisman: the
rules below are a handful of lines, and Talisman would also force https redirects and a CSP
on the marketer's landing pages, which keep their own styles).

- Every answer: `X-Content-Type-Options: nosniff` and a `Referrer-Policy`.
- Frame protection (`X-Frame-Options: SAMEORIGIN`, CSP `frame-ancestors 'self'`) everywhere
  except the embed paths (`FRAMEABLE_PATH_PREFIXES`), which other sites load.
- Admin pages (`ADMIN_PATH_PREFIXES`: the admin, sales screens, sign-in and password reset):
  a CSP that allows only our own scripts and styles (no inline ones) and
  `Cache-Control: no-store`, so a shared computer's cache never keeps a lead's data.
- HSTS when `BASE_URL` is https.

A view that sets one of these headers itself keeps its own (the outbox's sandboxed HTML part).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app, request
from werkzeug.wrappers import Response

ADMIN_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
             "form-action 'self'; frame-ancestors 'self'")
HSTS = "max-age=31536000"


def init_app(app: Flask) -> None:
    app.config.setdefault("ADMIN_PATH_PREFIXES", ("/admin", "/sales/", "/login", "/logout",
                                                  "/password-reset"))
    app.config.setdefault("FRAMEABLE_PATH_PREFIXES", ("/f/",))
    app.config.setdefault("REFERRER_POLICY", "strict-origin-when-cross-origin")
    app.after_request(add_headers)


def public_headers(config: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    """The headers every answer on `path` gets (all but the admin-only ones). Also used by WSGI
    middleware that answers before Flask (the tracking fast path)."""
    headers = [("X-Content-Type-Options", "nosniff"),
               ("Referrer-Policy", config["REFERRER_POLICY"])]
    if str(config.get("BASE_URL", "")).lower().startswith("https://"):
        headers.append(("Strict-Transport-Security", HSTS))
    if not path.startswith(tuple(config["FRAMEABLE_PATH_PREFIXES"])):
        headers.append(("X-Frame-Options", "SAMEORIGIN"))
    return headers


def add_headers(response: Response) -> Response:
    config = current_app.config
    headers = response.headers
    path = request.path
    for name, value in public_headers(config, path):
        headers.setdefault(name, value)
    if path.startswith(tuple(config["FRAMEABLE_PATH_PREFIXES"])):
        return response
    if path == "/" or path.startswith(tuple(config["ADMIN_PATH_PREFIXES"])):
        headers.setdefault("Content-Security-Policy", ADMIN_CSP)
        cache = headers.get("Cache-Control", "")
        if "no-store" not in cache:
            headers["Cache-Control"] = "no-store"
    return response

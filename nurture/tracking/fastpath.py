"""The WSGI fast path for the two hottest URLs: the open pixel and tracked clicks.

Every Flask request pays for the whole application — the rate limiter's bookkeeping, CSRF,
Flask-Login's cookie hook, the session, a database session created and removed, the outbox's
teardown — although neither URL needs any of it. This middleware sits in front of the Flask
app (`app.wsgi_app`) and answers them with the minimum:

* pixel `GET|HEAD /t/o/<token>[.gif]`: verify the signed token, push the hit to the buffer
  (Redis, or memory when Redis is down), answer the GIF. A bad token gets the same GIF and
  no hit, as in the view.
* click `GET|HEAD /t/c/<token>`: verify the token; one Redis call (`links.CLICK_SCRIPT`, on
  the buffer's connection) reads the target stored at send time and queues the hit; answer the
  redirect and the visitor cookie. The target never comes from the request; once read, this
  process keeps it (`links.cache`) and later clicks of that link are a plain push.

Anything else goes to Flask unchanged, and so does every case that needs more: a bad click
token (the 400 page), a target Redis does not hold (the view reads the database and puts it
back, `views.LINK_MISS`), a Redis error (the view queues the hit in memory without trying
Redis again, `views.REDIS_DOWN`) or a backlog already waiting in memory (order is kept). The
views in `views` are the reference; `TRACKING_FAST_PATH = False` turns this off.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from flask import Flask
from redis.exceptions import RedisError
from werkzeug.http import dump_cookie, parse_cookie

from app import security_headers, visitors
from nurture.tracking import buffer, links, tokens, views

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _gif(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", list(views.GIF_HEADERS))
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [views.GIF]


@lru_cache(maxsize=links.CACHE_SIZE)
def _redirect_parts(url: str) -> tuple[str, tuple[tuple[str, str], ...], bytes]:
    """The view's redirect for `url` (`views.redirect_response`), built by werkzeug once per
    target and replayed: status, headers, body."""
    response = views.redirect_response(url)
    headers = tuple(response.get_wsgi_headers({"REQUEST_METHOD": "GET"}).to_wsgi_list())
    return response.status, headers, response.get_data()


class TrackingFastPath:
    def __init__(self, app: Flask, wsgi_app: WSGIApp):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO") or ""
        if path.startswith("/t/") and environ.get("REQUEST_METHOD") in ("GET", "HEAD") \
                and self.app.config.get("TRACKING_FAST_PATH", True):
            answer: WSGIApp | None = None
            if path.startswith("/t/o/"):
                answer = self._pixel(environ, path[5:])
            elif path.startswith("/t/c/"):
                answer = self._click(environ, path[5:])
            if answer is not None:
                return answer(environ, self._with_security_headers(path, start_response))
        return self.wsgi_app(environ, start_response)

    # -- the two answers ---------------------------------------------------------------------

    def _pixel(self, environ: dict[str, Any], token: str) -> WSGIApp | None:
        token = token.removesuffix(".gif")
        if not token or "/" in token:
            return None  # not a pixel URL: Flask's routing decides
        send_id = tokens.read_open(token, self.app.config["SECRET_KEY"])
        if send_id is not None:
            self._push(self._event(environ, "open", send_id=send_id))
        return _gif  # the same answer for any token: no oracle

    def _click(self, environ: dict[str, Any], token: str) -> WSGIApp | None:
        if not token or "/" in token:
            return None
        parsed = tokens.read_click(token, self.app.config["SECRET_KEY"])
        if parsed is None:
            return None  # the view answers 400 with the error page
        send_id, index = parsed
        if index == tokens.HONEYPOT_INDEX:
            self._push(self._event(environ, "click", send_id=send_id, index=index,
                                   honeypot=True))
            return views.honeypot_response()
        memory = buffer.get(self.app)
        if memory.pending:
            return None  # Redis was failing a moment ago: the view queues behind the backlog
        vid = None if self._privacy_signal(environ) else self._visitor_id(environ)
        event = self._event(environ, "click", send_id=send_id, index=index, vid=vid)
        known = links.cache(self.app)
        url = known.get((send_id, index))
        if url is not None:  # read from Redis before by this process: a plain push
            self._push({**event, "url": url})
        else:
            prefix = json.dumps(event, separators=(",", ":"))[:-1] + ',"url":'
            try:
                url = links.click_in_redis(memory.call, send_id, index, prefix, buffer.KEY)
            except RedisError as exc:
                log.warning("tracking: Redis unavailable for a click (%s)", exc)
                environ[views.REDIS_DOWN] = True
                return None
            except Exception:  # nothing was queued: the view does it the slow way
                log.exception("tracking: fast click failed")
                return None
            if url is None:
                environ[views.LINK_MISS] = True
                return None
            known.put((send_id, index), url)
        status, headers, body = _redirect_parts(url)
        if vid:  # as `visitors.remember` does
            headers = (*headers, ("Set-Cookie", dump_cookie(
                visitors.COOKIE, vid, max_age=visitors.MAX_AGE, httponly=True, samesite="Lax",
                secure=visitors.secure(self.app.config, environ.get("wsgi.url_scheme", "")))))

        def answer(environ: dict[str, Any], start_response: Callable[..., Any]
                   ) -> Iterable[bytes]:
            start_response(status, list(headers))
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

        return answer

    # -- helpers -----------------------------------------------------------------------------

    def _with_security_headers(self, path: str, start_response: Callable[..., Any]
                               ) -> Callable[..., Any]:
        """`start_response` adding what Flask's `security_headers` adds to the views' answers."""
        extra = security_headers.public_headers(self.app.config, path)

        def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            present = {name.lower() for name, _ in headers}
            headers = [*headers, *((n, v) for n, v in extra if n.lower() not in present)]
            return start_response(status, headers, *args)

        return start

    @staticmethod
    def _event(environ: dict[str, Any], kind: str, **fields: Any) -> dict[str, Any]:
        return views.hit_event(kind, environ.get("REQUEST_METHOD", "GET"),
                               environ.get("HTTP_USER_AGENT"), environ.get("REMOTE_ADDR"),
                               **fields)

    def _push(self, event: dict[str, Any]) -> None:
        try:
            buffer.get(self.app).push(event)
        except Exception:  # a tracking hiccup must never break the image or the redirect
            log.exception("tracking: could not buffer a %s hit", event.get("kind"))

    def _privacy_signal(self, environ: dict[str, Any]) -> bool:
        """`views.privacy_signal` on the raw environ."""
        if not self.app.config["TRACKING_HONOUR_GPC"]:
            return False
        return environ.get("HTTP_SEC_GPC") == "1" or environ.get("HTTP_DNT") == "1"

    @staticmethod
    def _visitor_id(environ: dict[str, Any]) -> str:
        """`visitors.visitor_id` on the raw environ: the cookie's id, or a new one."""
        if environ.get("HTTP_COOKIE"):
            existing = views._valid_vid(parse_cookie(environ).get(visitors.COOKIE))
            if existing:
                return existing
        return secrets.token_urlsafe(18)


def install(app: Flask) -> None:
    app.wsgi_app = TrackingFastPath(app, app.wsgi_app)  # type: ignore[method-assign]

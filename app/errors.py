"""Error answers: Kindling's own pages for people, RFC 9457 problem details under `/api/`.

- 4xx: the page (or problem) says what went wrong in words; under `/api/v1` the REST API's
  own problems (`app.api.errors`), which also name the field at fault.
- 500: an unexpected error; the page says so without details (the log has the traceback).
- 503: the database is unreachable, silent past its timeouts, or busy: "try again shortly",
  with `Retry-After` (`RETRY_AFTER_SECONDS`).
- `Retry-After` belongs to refusals for now (429, 503) only: Flask-Limiter adds it to every
  answer of a limited route, so it is taken off any other answer here.

Rendering an error never touches the database: the templates use no `current_user` and no query.
"""

from __future__ import annotations

import logging

import sqlalchemy.exc
from flask import Flask, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from app.problems import problem

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Please go back and try again."),
    403: ("Not allowed", "Your account does not have access to this page."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    410: ("Gone", "This page is no longer available."),
    413: ("Too large", "What you sent is larger than we accept."),
    429: ("Slow down", "Too many requests. Please wait a minute and try again."),
    500: ("Something went wrong",
          "Something went wrong on our side and it has been logged. Please try again later."),
    503: ("Back shortly", "We cannot answer right now. Please try again in a minute."),
}
RETRY_STATUSES = (429, 503)
# What a database that is down, silent past its timeouts or out of connections raises.
UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
               sqlalchemy.exc.TimeoutError)

SLUGS = {400: "bad-request", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
         410: "gone", 413: "too-large", 429: "rate-limited", 500: "internal-error",
         503: "unavailable"}


def is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def answer(status: int, detail: str | None = None) -> Response:
    """The error answer for this request: a problem under /api/, else the branded page."""
    title, text = MESSAGES.get(status, ("Error", "Something went wrong."))
    if is_api():
        response = problem(status, SLUGS.get(status, "error"), title, detail or text)
    else:
        response = Response(render_template("error.html", title=title, text=detail or text),
                            status=status, mimetype="text/html")
    if status == 503:
        response.headers["Retry-After"] = str(current_app.config["RETRY_AFTER_SECONDS"])
        response.headers["Cache-Control"] = "no-store"
    return response


def _http_error(exc: HTTPException) -> Response:
    from app.api.errors import api_problem
    from app.api.framework import PREFIX as API_PREFIX

    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        return api_problem(exc.code or 500, exc)  # the REST API's own problems (field errors)
    response = answer(exc.code or 500)
    if exc.code == 429:
        retry_after = getattr(exc, "retry_after", None) or _window_of(exc)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
    return response


def _window_of(exc: HTTPException) -> int | None:
    """A Flask-Limiter refusal's window in seconds: when the caller may surely try again,
    known without asking the counters' store (a limiter that sends headers replaces it with
    the exact time)."""
    limit = getattr(getattr(exc, "limit", None), "limit", None)
    return int(limit.get_expiry()) if limit is not None else None


def _unavailable(exc: Exception) -> Response:
    log.warning("database unavailable, answering 503 for %s %s: %s", request.method,
                request.path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    try:
        from app.db import db

        db.session.rollback()
    except Exception:  # noqa: BLE001, S110 - the session is already broken; the answer goes on
        pass
    return answer(503)


def _strip_retry_after(response: Response) -> Response:
    if response.status_code not in RETRY_STATUSES:
        response.headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    """Register the handlers. Call before the extensions: the `after_request` registered first
    runs last, after Flask-Limiter's header injection."""
    from flask_wtf.csrf import CSRFError

    app.config.setdefault("RETRY_AFTER_SECONDS", 30)
    app.after_request(_strip_retry_after)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        return answer(400, "This form has expired or was not sent from our page. "
                           "Please reload the page and submit again.")

    for status in MESSAGES:
        if status not in (405, 500):  # 405: app.api answers it (a problem under /api/v1 only)
            app.register_error_handler(status, _http_error)
    app.register_error_handler(InternalServerError, lambda exc: answer(500))
    for exc_class in UNAVAILABLE:
        app.register_error_handler(exc_class, _unavailable)

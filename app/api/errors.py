"""API errors as RFC 9457 problem details that name the field at fault.

Every refusal under `/api/v1` answers `application/problem+json` (`app.problems.problem`):
validation errors list each field as `errors: [{field, pointer, detail}]` (the pointer is a
JSON Pointer into the request body, or the query parameter's name), and `detail` says the first
one in words, e.g. "company: Longer than maximum length 200."
"""

from __future__ import annotations

from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

from app.problems import problem

SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
         405: "method-not-allowed", 409: "conflict", 410: "gone", 413: "too-large",
         415: "unsupported-media-type", 422: "invalid-request", 429: "rate-limited",
         500: "server-error", 503: "unavailable"}


def flatten(messages: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Marshmallow's nested error messages as (path, message) pairs."""
    if isinstance(messages, dict):
        out: list[tuple[tuple[str, ...], str]] = []
        for key, value in messages.items():
            out.extend(flatten(value, path + (str(key),)))
        return out
    if isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        return [(path, " ".join(messages))]
    if isinstance(messages, list):
        return [item for value in messages for item in flatten(value, path)]
    return [(path, str(messages))]


def field_errors(messages: dict[str, Any]) -> list[dict[str, str]]:
    """webargs' {location: {field: [messages]}} as a list naming each field."""
    errors = []
    for location, by_field in messages.items():
        for path, message in flatten(by_field):
            name = ".".join(path) or location
            if path and path[0] == "_schema":
                name = location
                path = ()
            pointer = "#/" + "/".join(path) if location == "json" else name
            errors.append({"field": name, "pointer": pointer, "detail": message,
                           "in": "body" if location == "json" else location})
    return errors


def invalid(errors: list[dict[str, str]], status: int = 422) -> Response:
    first = errors[0] if errors else {"field": "", "detail": "The request is not valid."}
    detail = f"{first['field']}: {first['detail']}" if first["field"] else first["detail"]
    return problem(status, "invalid-request", "The request is not valid", detail,
                   errors=errors)


def field_problem(field: str, message: str, status: int = 422) -> Response:
    """A refusal of one body field (found past the schema: a forbidden stage move, …)."""
    return invalid([{"field": field, "pointer": "#/" + field.replace(".", "/"),
                     "detail": message, "in": "body"}], status)


def from_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    headers = dict(data.get("headers") or {})
    messages = data.get("messages")
    if status == 422 and isinstance(messages, dict):
        response = invalid(field_errors(messages))
    else:
        detail = exc.description if status != 500 else "Something went wrong on our side."
        response = problem(status, SLUGS.get(status, "error"), exc.name, detail or "")
    for header, value in list(headers.items()) + list(_exception_headers(exc)):
        response.headers[header] = value
    return response


def _exception_headers(exc: HTTPException) -> list[tuple[str, str]]:
    """Headers the exception itself carries (Allow on a 405, Retry-After on a 429)."""
    keep = ("allow", "retry-after", "www-authenticate")
    try:
        headers = exc.get_headers()
    except Exception:  # noqa: BLE001  a custom exception without an environ
        return []
    return [(k, v) for k, v in headers if k.lower() in keep]


def api_problem(status: int, exc: Exception | None = None) -> Response:
    """A refusal under /api/v1 that no API view answered (an unknown address, a method the
    address does not allow): problem details instead of the admin's HTML error page."""
    from werkzeug.exceptions import default_exceptions

    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    exc_class = default_exceptions.get(status)
    made = exc_class() if exc_class is not None else HTTPException()
    if exc_class is None:
        made.code = status
    return from_http_exception(made)


def method_not_allowed(exc: HTTPException) -> Response | HTTPException:
    """405 (raised while routing, before any blueprint is known): a problem under /api/v1,
    Werkzeug's own page elsewhere."""
    from flask import request

    from app.api.framework import PREFIX

    if request.path.startswith(PREFIX + "/"):
        return from_http_exception(exc)
    return exc

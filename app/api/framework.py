"""The machinery every `/api/v1` resource shares.

- `KindlingApi`: flask-smorest's `Api`, which builds the OpenAPI 3.1 document from the same
  marshmallow schemas that validate requests. Its error responses are documented as
  `application/problem+json`; its app-wide JSON error handler is not installed (the admin keeps
  its HTML error pages; the API's blueprints answer problems).
- `api_blueprint(name, path)`: a resource blueprint under `/api/v1` with bearer-token
  authentication (read scope for GET, write for the rest), the request body limit, the
  per-token rate limit (and a per-address one counting refused tokens) and its `RateLimit-*`
  headers, and problem details for every refusal.
- `register_resource(app, blueprint)`: how a package (core or feature) adds its resource.
"""

from __future__ import annotations

import hashlib
import http
import json
import math
import time
from typing import Any, NoReturn

import marshmallow as ma
from flask import Flask, current_app, g, request
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest, HTTPException, UnsupportedMediaType

from app.api import errors
from app.api.models import ApiToken
from app.api.schemas import ProblemSchema
from app.extensions import csrf, limiter
from app.problems import MEDIA_TYPE, problem

PREFIX = "/api/v1"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


class KindlingApi(Api):
    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = "DEFAULT_ERROR"

    def _register_error_handlers(self) -> None:
        """None app-wide: `api_blueprint` answers problem details for its own requests."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "A problem (RFC 9457)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, MEDIA_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number")
    return value


def strict_json(data: bytes) -> Any:
    """A body as JSON (RFC 8259), refusing what Python's reader takes but no database or
    JSON client can: NaN and Infinity, a number past a float, a lone UTF-16 surrogate, and
    nesting past the reader's recursion (else a 500). Raises JSONDecodeError."""
    text = data.decode("utf-8")  # a UnicodeDecodeError is webargs' 400 too
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    except UnicodeEncodeError:
        raise json.JSONDecodeError("a \\u escape names half a character (a lone surrogate)",
                                   text, 0) from None
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    return value


class ApiParser(FlaskParser):
    """webargs' parser with `strict_json` for bodies, whose refusal says why (a body of
    another type: 415), and unknown query parameters refused (422) like unknown body fields,
    not ignored: a misspelt filter would otherwise answer every row."""

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {  # noqa: RUF012  webargs' own
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": ma.RAISE, "querystring": ma.RAISE}

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            if req.get_data(cache=True):  # else the answer would blame the fields as missing
                raise UnsupportedMediaType("Send the body as JSON, with Content-Type: "
                                           "application/json.")
            return missing
        return strict_json(req.get_data(cache=True))

    def _handle_invalid_json_error(self, error: Any, req: Any, *args: Any,
                                   **kwargs: Any) -> NoReturn:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        raise BadRequest(f"The body is not valid JSON: {reason}.")


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = ApiParser()


def rate_limit_key() -> str:
    """Requests are counted per token (its fingerprint; no database read before the limit),
    or per address when no token is sent."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return "api:" + hashlib.sha256(header[7:].strip().encode("utf-8")).hexdigest()[:32]
    return "api-ip:" + (request.remote_addr or "-")


def _authenticate() -> Any:
    from app.api import tokens

    request.max_content_length = int(current_app.config["API_MAX_BODY_BYTES"])
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("Send an API token: Authorization: Bearer <token>.")
    row = tokens.authenticate(token.strip())
    if row is None:
        return _unauthorized("This token is not valid: it is unknown, revoked, or its user "
                             "is no longer active.")
    if request.method in WRITE_METHODS and not row.allows_write:
        return problem(403, "forbidden", "Forbidden",
                       "This token has the read scope; this request needs a write token.")
    g.api_token = row
    g.api_user = row.user
    return None


def _unauthorized(detail: str) -> Any:
    response = problem(401, "unauthorized", "Unauthorized", detail)
    response.headers["WWW-Authenticate"] = 'Bearer realm="kindling-api"'
    return response


def _rate_limit_headers(response: Any) -> Any:
    """IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers): the policy, what
    is left in the window and when it resets, besides Flask-Limiter's X-RateLimit-*."""
    current = limiter.current_limit
    if current is not None:
        window = current.limit.get_expiry()
        reset = max(0, math.ceil(current.reset_at - time.time()))
        response.headers["RateLimit-Policy"] = f"{current.limit.amount};w={window}"
        response.headers["RateLimit-Limit"] = str(current.limit.amount)
        response.headers["RateLimit-Remaining"] = str(max(0, current.remaining))
        response.headers["RateLimit-Reset"] = str(reset)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def api_blueprint(name: str, import_name: str, path: str, description: str) -> Blueprint:
    """A resource under `/api/v1<path>` (call at import time: the rate limit is attached once
    to the blueprint object)."""
    blp = ApiBlueprint(name, import_name, url_prefix=PREFIX + path, description=description)
    blp.before_request(_authenticate)
    blp.after_request(_rate_limit_headers)
    blp.register_error_handler(HTTPException, errors.from_http_exception)
    limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=rate_limit_key,
                  per_method=False)(blp)
    # Each made-up token has an allowance of its own above: refusals count per address too.
    limiter.limit(lambda: current_app.config["API_AUTH_FAILURE_RATE_LIMIT"],
                  key_func=lambda: "api-401:" + (request.remote_addr or "-"), per_method=False,
                  deduct_when=lambda response: response.status_code == 401)(blp)
    return blp


def register_resource(app: Flask, blp: Blueprint) -> None:
    api: KindlingApi = app.extensions["kindling_api"]
    api.register_blueprint(blp)
    csrf.exempt(blp)


def current_token() -> ApiToken:
    return g.api_token


def init_app(app: Flask) -> KindlingApi:
    app.config.setdefault("API_TITLE", "Kindling REST API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = KindlingApi(spec_kwargs={
        "info": {"description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": BEARER,
    })
    api.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer",
                       "description": "An API token from the admin (API tokens) or "
                                      "`flask api-token create`."})
    app.extensions["kindling_api"] = api
    return api


DESCRIPTION = """Kindling's REST API. Authenticate with `Authorization: Bearer <token>`
(tokens: admin → API tokens, or `flask --app wsgi api-token create EMAIL --scope write --name
NAME`). Read tokens may GET; write tokens may also POST, PATCH and DELETE.

Limits: list pages hold at most 200 items (`limit`, default 50; `next_cursor` fetches the next
page); request bodies at most 1 MiB; events at most 1,000 per request; each token may make 600
requests a minute (the `RateLimit-*` headers say what is left; over it, 429 with
`Retry-After`).

Errors are `application/problem+json` (RFC 9457); validation errors list each field at fault in
`errors`. Unknown fields and query parameters are refused (422), never ignored."""

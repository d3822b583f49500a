"""Signed one-click links in alerts. Payload: the alert and lead ids, never an address.
One salt per purpose, so an accept token can never be replayed as a reject token."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

SALTS = {"accept": "kindling.accept", "reject": "kindling.reject"}
ROUTES = {"accept": "/sales/a/", "reject": "/sales/r/"}


@dataclass(frozen=True)
class LinkTarget:
    alert_id: int
    lead_id: int


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALTS[purpose])


def make_token(purpose: str, alert_id: int, lead_id: int) -> str:
    return _serializer(purpose).dumps({"a": alert_id, "l": lead_id})


def read_token(purpose: str, token: str) -> LinkTarget | None:
    """The target of a valid, unexpired token; None when tampered, expired or malformed."""
    max_age = int(current_app.config["SALES_LINK_MAX_AGE"])
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
        return LinkTarget(int(data["a"]), int(data["l"]))
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


def absolute_url(purpose: str, alert_id: int, lead_id: int) -> str:
    return current_app.config["BASE_URL"] + ROUTES[purpose] + make_token(purpose, alert_id,
                                                                          lead_id)

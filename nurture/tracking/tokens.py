"""Signed, opaque tokens for the open pixel and tracked links.

Each purpose has its own salt, so a click token is worthless on the pixel path and the other
way round. Payloads carry ids only (never an address). They do not expire: a link in a
year-old email must still lead somewhere.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

OPEN_SALT = "kindling.open"
CLICK_SALT = "kindling.click"
HONEYPOT_INDEX = 0  # link indices start at 1; 0 is the hidden link no person can click


_serializers: dict[tuple[Any, str], URLSafeSerializer] = {}


def _serializer(salt: str, secret_key: Any = None) -> URLSafeSerializer:
    """One serializer per (secret, purpose), built once: the hot path verifies a token per
    request. `secret_key` lets code outside an app context (the WSGI fast path) pass it."""
    if secret_key is None:
        secret_key = current_app.config["SECRET_KEY"]
    key = (secret_key if isinstance(secret_key, (str, bytes)) else tuple(secret_key), salt)
    serializer = _serializers.get(key)
    if serializer is None:
        if len(_serializers) > 64:  # tests build many apps with their own secrets
            _serializers.clear()
        serializer = _serializers[key] = URLSafeSerializer(secret_key, salt=salt)
    return serializer


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def open_token(send_id: int) -> str:
    return _serializer(OPEN_SALT).dumps(int(send_id))


def read_open(token: str, secret_key: Any = None) -> int | None:
    """The send id in an open token; None when forged, damaged or for another purpose."""
    try:
        value = _serializer(OPEN_SALT, secret_key).loads(token)
    except (BadData, ValueError, TypeError):
        return None
    return value if _is_id(value) and value > 0 else None


def click_token(send_id: int, index: int) -> str:
    return _serializer(CLICK_SALT).dumps([int(send_id), int(index)])


def read_click(token: str, secret_key: Any = None) -> tuple[int, int] | None:
    """(send id, link index) from a click token; None when it is not one of ours."""
    try:
        value = _serializer(CLICK_SALT, secret_key).loads(token)
    except (BadData, ValueError, TypeError):
        return None
    if (isinstance(value, list) and len(value) == 2 and _is_id(value[0]) and value[0] > 0
            and _is_id(value[1])):
        return value[0], value[1]
    return None

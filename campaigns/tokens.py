"""Signed tokens of this package, one salt per purpose. Payloads hold ids only, never an email.

- thanks:   [submission id, landing page id], in the address of the thank-you page
- download: [submission id, asset id], valid for the asset's `link_ttl_hours`
- receipt / intake download: [intake id, page or asset id], the same two made at submit time,
  before the intake processor has made the submission. The thank-you page makes the intake
  download token at every load, dated with its receipt's time (the submit's), so a reload
  never extends the link.

Tokens carry their signing time; the caller decides how old is too old (it depends on the asset).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

THANKS_SALT = "kindling.thanks"
DOWNLOAD_SALT = "kindling.download"
# Made at submit time from the intake id alone (before any submission exists).
RECEIPT_SALT = "kindling.intake-thanks"
INTAKE_DOWNLOAD_SALT = "kindling.intake-download"


def _serializer(salt: str, signed_at: float | None = None) -> URLSafeTimedSerializer:
    """`signed_at`: date the tokens with that time (seconds since the epoch) instead of now."""
    if signed_at is None:
        return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)
    seconds = int(signed_at)

    class Dated(TimestampSigner):
        def get_timestamp(self) -> int:
            return seconds

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt, signer=Dated)


@dataclass(frozen=True)
class Signed:
    first: int
    second: int
    signed_at: float  # seconds since the epoch

    def expired(self, max_age_seconds: float) -> bool:
        return time.time() - self.signed_at > max_age_seconds


def _load(salt: str, token: str) -> Signed | None:
    """The ids in a genuine token (expired or not), or None for a tampered or malformed one."""
    try:
        payload, signed_at = _serializer(salt).loads(token, return_timestamp=True)
    except BadSignature:
        return None
    if (not isinstance(payload, list) or len(payload) != 2
            or not all(type(v) is int for v in payload)):
        return None
    return Signed(payload[0], payload[1], signed_at.timestamp())


def thanks_token(submission_id: int, page_id: int) -> str:
    return _serializer(THANKS_SALT).dumps([submission_id, page_id])


def load_thanks(token: str) -> Signed | None:
    return _load(THANKS_SALT, token)


def download_token(submission_id: int, asset_id: int) -> str:
    return _serializer(DOWNLOAD_SALT).dumps([submission_id, asset_id])


def load_download(token: str) -> Signed | None:
    return _load(DOWNLOAD_SALT, token)


def download_url(submission_id: int, asset_id: int) -> str:
    """Absolute link for emails: jobs have no request to build a host from."""
    return f"{current_app.config['BASE_URL']}/d/{download_token(submission_id, asset_id)}"


@dataclass(frozen=True)
class SignedIntake:
    intake_id: str
    second: int
    signed_at: float

    def expired(self, max_age_seconds: float) -> bool:
        return time.time() - self.signed_at > max_age_seconds


def _load_intake(salt: str, token: str) -> SignedIntake | None:
    try:
        payload, signed_at = _serializer(salt).loads(token, return_timestamp=True)
    except BadSignature:
        return None
    if (not isinstance(payload, list) or len(payload) != 2 or type(payload[0]) is not str
            or type(payload[1]) is not int or not payload[0].isalnum()):
        return None
    return SignedIntake(payload[0], payload[1], signed_at.timestamp())


def receipt_token(intake_id: str, page_id: int) -> str:
    return _serializer(RECEIPT_SALT).dumps([intake_id, page_id])


def load_receipt(token: str) -> SignedIntake | None:
    return _load_intake(RECEIPT_SALT, token)


def intake_download_token(intake_id: str, asset_id: int, submitted_at: float) -> str:
    """Dated `submitted_at` (the receipt's time), not now: it expires the asset's hours after
    the submit however often, or late, it is made again."""
    return _serializer(INTAKE_DOWNLOAD_SALT, submitted_at).dumps([intake_id, asset_id])


def load_intake_download(token: str) -> SignedIntake | None:
    return _load_intake(INTAKE_DOWNLOAD_SALT, token)

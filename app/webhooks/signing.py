"""Standard Webhooks signatures (standardwebhooks.com), through the spec's own library:
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, secrets `whsec_<base64>`."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from app.db import utcnow


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def headers(msg_id: str, body: str, secrets_in_use: list[str],
            at: datetime | None = None) -> dict[str, str]:
    """The three headers; one signature per secret in use (two during a rotation)."""
    at = at or utcnow()
    signatures = [Webhook(secret).sign(msg_id, at, body) for secret in secrets_in_use]
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": " ".join(signatures)}

"""Unsubscribe links and what unsubscribing does.

The token is signed with its own salt and carries ids only (the lead, and the send it came
from), never an address. It never expires: an unsubscribe link in a years-old email must work.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import record_event
from nurture.models import LIVE_STATUSES, Enrollment, SuppressionReason
from nurture.suppression import suppress

SALT = "kindling.nurture.unsubscribe"


def _serializer() -> URLSafeSerializer:
    return _serializer_for(current_app.config["SECRET_KEY"])


@lru_cache(maxsize=4)  # one token per email sent: build the serializer once
def _serializer_for(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def make_token(lead_id: int, send_id: int | None = None) -> str:
    payload = {"l": lead_id}
    if send_id is not None:
        payload["s"] = send_id
    return _serializer().dumps(payload)


def read_token(token: str) -> tuple[int, int | None] | None:
    """(lead_id, send_id) from a token, None when it is forged or damaged."""
    try:
        payload = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("l"), int):
        return None
    send_id = payload.get("s")
    return payload["l"], send_id if isinstance(send_id, int) else None


def url_for_token(token: str) -> str:
    return f"{current_app.config['BASE_URL']}/u/{token}"


def unsubscribe(lead: Lead, *, source: str, send_id: int | None = None) -> bool:
    """Stop all nurture email to `lead`. Idempotent; returns False when already done.

    Sets `unsubscribed_at`, suppresses the address, ends every live enrollment with a reason and
    records an `unsubscribed` event. The caller commits.
    """
    suppress(lead.email, SuppressionReason.UNSUBSCRIBE, source)
    exit_all(lead.id, "unsubscribed")
    if lead.unsubscribed_at is not None:
        return False
    lead.unsubscribed_at = utcnow()
    data = {"source": source}
    if send_id is not None:
        data["send_id"] = str(send_id)
    record_event(lead, "unsubscribed", data=data)
    return True


def exit_all(lead_id: int, reason: str) -> int:
    """End every live enrollment of a lead (unsubscribe, bounce, spam report)."""
    from nurture.enrollment import end

    live = db.session.scalars(
        sa.select(Enrollment).where(Enrollment.lead_id == lead_id,
                                    Enrollment.status.in_(LIVE_STATUSES))
    ).all()
    for enrollment in live:
        end(enrollment, reason, finished=False)
    return len(live)

"""Erased addresses, kept only as a keyed hash: HMAC-SHA256 of the normalised address under the
server's secret (`PRIVACY_HASH_KEY`, else `SECRET_KEY`). Without the secret the list cannot be
read back into addresses, nor checked against a guessed list.

A lead created again for an erased address (import, API, a form without a ticked consent box)
is marked unsubscribed, so no marketing email goes to it; ticking a consent box on a form is the
person opting in again, which lifts it (`opted_in_again`). Nothing here commits.
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa
from flask import current_app

from app.db import any_of, db, utcnow
from app.leads.models import Lead
from app.privacy.models import ErasedAddress


def digest(identity: str) -> str:
    key = current_app.config.get("PRIVACY_HASH_KEY") or current_app.config["SECRET_KEY"]
    return hmac.new(str(key).encode(), identity.strip().lower().encode(),
                    hashlib.sha256).hexdigest()


def remember(identity: str) -> str:
    """Add an address to the list (idempotent); returns its digest."""
    value = digest(identity)
    if db.session.get(ErasedAddress, value) is None:
        db.session.add(ErasedAddress(digest=value, erased_at=utcnow()))
        db.session.flush()
    return value


def is_erased(identity: str) -> bool:
    return db.session.get(ErasedAddress, digest(identity)) is not None


SUPPRESSED_EVENT = "suppressed_after_erasure"
SUPPRESSED_DATA = {"reason": "this address was erased on request; no marketing email until the "
                             "person opts in again through a form"}


def among(identities: list[str]) -> set[str]:
    """Which of these normalised addresses were erased (one query; batch writers)."""
    if not identities:
        return set()
    digests = {digest(identity): identity for identity in identities}
    found = db.session.scalars(sa.select(ErasedAddress.digest)
                               .where(any_of(ErasedAddress.digest, list(digests))))
    return {digests[value] for value in found}


def on_new_lead(lead: Lead) -> None:
    """Called by `upsert_lead` for a lead it created: an erased address stays unsubscribed."""
    if db.session.scalar(sa.select(ErasedAddress.digest)
                         .where(ErasedAddress.digest == digest(lead.email))) is None:
        return
    lead.unsubscribed_at = utcnow()
    from app.leads.service import record_event

    record_event(lead, SUPPRESSED_EVENT, data=SUPPRESSED_DATA)


def opted_in_again(lead: Lead, source: str) -> bool:
    """The person opted in themselves: forget the digest and let email go to them again."""
    row = db.session.get(ErasedAddress, digest(lead.email))
    if row is None:
        return False
    db.session.delete(row)
    lead.unsubscribed_at = None
    from app.leads.service import record_event

    record_event(lead, "opted_in_after_erasure", data={"source": source[:200]})
    return True

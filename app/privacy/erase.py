"""Erasure requests: the person's data leaves every holder; aggregates stay.

    erase(email, actor="user 3", reason="asked by email on 2 Dec") -> Erasure

In one transaction (the lead row locked first, so a send in flight either finished before or
sees the erased lead after): every table holder erases its rows (deleted, or scrubbed where
counts must keep their totals), the lead becomes a tombstone without personal data (stage and
id kept, so reports and scores add up; unsubscribed, so nothing is ever sent to it), the
address joins the keyed-hash list (`app.privacy.erased`) and an audit row says who, when and
why. After the commit, files under the instance folder and Redis are cleaned.
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import ERASED_DISPLAY, Lead
from app.leads.service import PROFILE_FIELDS, record_event
from app.privacy import erased
from app.privacy.export import find_person
from app.privacy.holders import (
    Found,
    OtherHolder,
    barriers,
    erase_rows,
    registered,
    table_holders,
)
from app.privacy.models import Erasure

log = logging.getLogger(__name__)


def erase(email: str, *, actor: str, reason: str) -> Erasure:
    """Raises app.privacy.export.NoSuchPerson when nothing is held about the address. An
    address held without a lead (a quarantined submit) loses its rows; no tombstone is made."""
    identity, lead = find_person(email)
    if lead is not None:
        db.session.execute(sa.select(Lead.id).where(Lead.id == lead.id).with_for_update())
        db.session.refresh(lead)
    found = Found(lead=lead, identity=identity)
    removed: dict[str, int] = {}
    for holder in table_holders():
        count = erase_rows(holder, found)
        if count:
            removed[holder.name] = count
    if lead is not None:
        _tombstone(lead)
    erased.remember(found.identity)
    audit = Erasure(erased_at=utcnow(), actor=actor[:200],
                    reason=_without(reason.strip(), identity), removed=removed)
    db.session.add(audit)
    db.session.flush()
    if lead is not None:
        record_event(lead, "lead_erased", data={"erasure_id": audit.id})
    audit_id, lead_id = audit.id, lead.id if lead is not None else None
    db.session.commit()
    _compact_sqlite()
    # From the commit on, no new email starts (the tombstone is unsubscribed and every send
    # re-reads the lead after its claim); one already handed to the provider is waited for.
    if lead_id is not None:
        for wait in barriers():
            wait(lead_id)
    outside: dict[str, int] = {}
    for other in registered():
        if isinstance(other, OtherHolder):
            count = other.erase(found)
            if count:
                outside[other.name] = count
    audit = db.session.get(Erasure, audit_id) or audit
    if outside:
        audit.removed = {**removed, **outside}
        db.session.commit()
    log.info("privacy: erasure %s done (lead %s)", audit_id, lead_id)
    return audit


ADDRESS_IN_REASON = "[the erased address]"


def _without(reason: str, identity: str) -> str:
    """The audit row holds no personal data: the address typed in the reason is replaced."""
    return re.sub(re.escape(identity), ADDRESS_IN_REASON, reason, flags=re.IGNORECASE)


def _tombstone(lead: Lead) -> None:
    """The lead row stays for its id (events, stage history and sends point at it and reports
    count it), holding nothing about the person."""
    lead.email = f"erased-{lead.id}"
    lead.email_display = ERASED_DISPLAY
    for name in PROFILE_FIELDS:
        setattr(lead, name, "")
    lead.attributes = {}
    lead.unsubscribed_at = lead.unsubscribed_at or utcnow()


def _compact_sqlite() -> None:
    """SQLite keeps deleted text in free pages and the write-ahead log: rewrite the file."""
    if db.engine.dialect.name != "sqlite":
        return
    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM"))
            conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
    except Exception:  # the erasure stands; the file is compacted next time
        log.warning("privacy: could not compact the SQLite file", exc_info=True)

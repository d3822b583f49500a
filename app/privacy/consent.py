"""Consent per purpose: purposes with versioned texts, and the ledger of grants and withdrawals.

    purpose = define("product_news", "Product news", "Yes, email me about new features.")
    grant(lead, purpose, source="form", ip=..., text=purpose.current_text)
    withdraw(lead, purpose, source="unsubscribe")
    has_consent(lead_id, purpose_id) -> bool

A lead's consent to a purpose is its latest ledger row for that purpose. Withdrawals call the
listeners registered with `add_withdrawal_listener` (nurture ends the journeys that needed the
purpose) in the caller's transaction. Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import Flask, current_app

from app.db import db, utcnow
from app.leads.models import Lead
from app.privacy.models import ConsentPurpose, ConsentRecord, ConsentText

KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
SOURCES = ("form", "import", "api", "unsubscribe", "admin")


class ConsentError(ValueError):
    """A purpose that cannot be defined or found; the message says why."""


def add_withdrawal_listener(app: Flask, listener: Callable[[Lead, ConsentPurpose], object]) -> None:
    """Call `listener(lead, purpose)` whenever a lead withdraws consent to a purpose."""
    listeners = app.extensions.setdefault("consent_withdrawal_listeners", [])
    if listener not in listeners:
        listeners.append(listener)


def add_text_listener(app: Flask, listener: Callable[[ConsentPurpose], object]) -> None:
    """Call `listener(purpose)` in the caller's transaction when a purpose gets a new text."""
    listeners = app.extensions.setdefault("consent_text_listeners", [])
    if listener not in listeners:
        listeners.append(listener)


def purposes() -> list[ConsentPurpose]:
    return list(db.session.scalars(sa.select(ConsentPurpose).order_by(ConsentPurpose.name)))


def by_key(key: str) -> ConsentPurpose | None:
    return db.session.scalar(sa.select(ConsentPurpose).where(ConsentPurpose.key == key))


def define(key: str, name: str, text: str) -> ConsentPurpose:
    """Create a purpose, or give an existing one a new text (a new version when it differs)."""
    key = (key or "").strip().lower()
    if not KEY_PATTERN.fullmatch(key):
        raise ConsentError("A purpose key is 1 to 40 lower-case letters, digits or underscores, "
                           "starting with a letter (for example product_news).")
    if not (text or "").strip():
        raise ConsentError("Write the text people agree to.")
    purpose = by_key(key)
    if purpose is None:
        purpose = ConsentPurpose(key=key, name=(name or key).strip()[:200])
        db.session.add(purpose)
        db.session.flush()
    elif name and name.strip():
        purpose.name = name.strip()[:200]
    set_text(purpose, text)
    return purpose


def set_text(purpose: ConsentPurpose, text: str) -> ConsentText:
    """The purpose's current text; a changed text becomes a new version (old ones are kept,
    since the ledger points at the exact version each person agreed to)."""
    text = text.strip()
    current = purpose.current_text
    if current is not None and current.text == text:
        return current
    latest = db.session.scalar(sa.select(sa.func.max(ConsentText.version))
                               .where(ConsentText.purpose_id == purpose.id)) or 0
    row = ConsentText(version=latest + 1, text=text)
    purpose.texts.append(row)
    db.session.flush()
    for listener in current_app.extensions.get("consent_text_listeners", []):
        listener(purpose)
    return row


def text_at(purpose: ConsentPurpose, at: datetime) -> ConsentText | None:
    """The text forms showed for the purpose at `at` (its latest version made by then): what a
    person ticked, when their submit is processed after a newer text (a backlog, a replay)."""
    shown = [text for text in purpose.texts if text.created_at <= at]
    return shown[-1] if shown else None


def _record(lead: Lead, purpose: ConsentPurpose, granted: bool, source: str, *,
            text: ConsentText | None, ip: str, detail: str,
            at: datetime | None) -> ConsentRecord:
    if source not in SOURCES:
        raise ConsentError(f"unknown consent source {source!r}")
    row = ConsentRecord(lead_id=lead.id, purpose_id=purpose.id, granted=granted, source=source,
                        text_id=text.id if text is not None else None, ip=(ip or "")[:45],
                        detail=(detail or "")[:300], created_at=at or utcnow())
    db.session.add(row)
    db.session.flush()
    return row


def grant(lead: Lead, purpose: ConsentPurpose, *, source: str, ip: str = "",
          text: ConsentText | None = None, detail: str = "",
          at: datetime | None = None) -> ConsentRecord:
    """Record that `lead` agreed to `purpose` (the text they saw, else the current one)."""
    return _record(lead, purpose, True, source, text=text or purpose.current_text, ip=ip,
                   detail=detail, at=at)


def withdraw(lead: Lead, purpose: ConsentPurpose, *, source: str, ip: str = "",
             detail: str = "") -> ConsentRecord | None:
    """Record a withdrawal (None when there was no consent to withdraw) and tell listeners."""
    if not has_consent(lead.id, purpose.id):
        return None
    row = _record(lead, purpose, False, source, text=None, ip=ip, detail=detail, at=None)
    for listener in current_app.extensions.get("consent_withdrawal_listeners", []):
        listener(lead, purpose)
    return row


@dataclass
class State:
    purpose: ConsentPurpose
    granted: bool
    record: ConsentRecord | None  # the latest ledger row, None when never asked


def states(lead_id: int) -> list[State]:
    """Every purpose with this lead's current answer."""
    latest = _latest_rows(lead_id)
    return [State(p, bool(latest.get(p.id) and latest[p.id].granted), latest.get(p.id))
            for p in purposes()]


def granted_purpose_ids(lead_id: int) -> set[int]:
    return {pid for pid, row in _latest_rows(lead_id).items() if row.granted}


def has_consent(lead_id: int, purpose_id: int) -> bool:
    row = db.session.scalar(
        sa.select(ConsentRecord).where(ConsentRecord.lead_id == lead_id,
                                       ConsentRecord.purpose_id == purpose_id)
        .order_by(ConsentRecord.id.desc()).limit(1))
    return bool(row and row.granted)


def _latest_rows(lead_id: int) -> dict[int, ConsentRecord]:
    rows = db.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.lead_id == lead_id)
                              .order_by(ConsentRecord.id))
    return {row.purpose_id: row for row in rows}


def withdraw_all(lead: Lead, *, source: str, ip: str = "") -> int:
    """Withdraw every purpose the lead agreed to; returns how many."""
    withdrawn = 0
    for purpose_id in sorted(granted_purpose_ids(lead.id)):
        purpose = db.session.get(ConsentPurpose, purpose_id)
        if purpose is not None and withdraw(lead, purpose, source=source, ip=ip) is not None:
            withdrawn += 1
    return withdrawn


def history(lead_id: int) -> Iterable[ConsentRecord]:
    return db.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.lead_id == lead_id)
                              .order_by(ConsentRecord.id))

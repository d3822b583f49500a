"""Operations on the lead core that every feature uses: identity, upsert, events, stages.

None of these commit: callers own the transaction, so a form submit writes the lead, its
event and its outbox row in one commit or not at all.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app

from app import outbox
from app.db import db, utcnow
from app.leads.event_columns import split_send
from app.leads.models import Event, Lead, Stage, StageChange

# Lead columns a submission or an import may set; anything else goes to `attributes`.
log = logging.getLogger(__name__)

PROFILE_FIELDS = ("first_name", "last_name", "company", "job_title", "phone", "country")


# Their column widths: a longer value is cut to fit (see `upsert_lead`).
PROFILE_LENGTHS: dict[str, int] = {
    name: cast(sa.String, Lead.__table__.c[name].type).length or 0 for name in PROFILE_FIELDS}


# Events that are not the lead's own doing: they never make "last activity".
NOT_ACTIVITY = frozenset({
    "owner_assigned", "profile_edited", "handoff_decided", "handoff_refused", "engagement_reset",
    "nurture_enrolled", "nurture_finished", "nurture_exited", "email_sent", "email_delivered",
    "email_dropped", "email_blocked", "bounced", "asset_email_sent", "asset_email_failed",
    "sales_alert_sent", "sales_alert_undelivered", "outcome_recorded", "subscription_changed",
    "subscription_expired", "lead_imported"})


class InvalidEmail(ValueError):
    pass


def _remember_domain_checks() -> None:
    """email-validator checks the domain of every address from scratch (IDNA rules, character
    by character: two thirds of its time), though an import's 100,000 rows, like a form's
    visitors, share few domains. The check is a pure function of its arguments and its result
    only read: keep the last 4,096 that passed (one that fails raises, and is not kept)."""
    module: Any = importlib.import_module("email_validator.validate_email")
    check = getattr(module, "validate_email_domain_name", None)
    if check is not None and not hasattr(check, "cache_info"):
        module.validate_email_domain_name = functools.lru_cache(maxsize=4096)(check)


_remember_domain_checks()


def normalise_email(raw: str) -> tuple[str, str]:
    """Return (identity, display) for an address typed by a person.

    Identity folds case and surrounding space so `Ann@Example.com ` and `ann@example.com` are one
    lead; display keeps what they typed (trimmed, Unicode-normalised by email-validator).
    """
    text = (raw or "").strip()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return result.normalized.lower(), result.normalized


@dataclass
class Upsert:
    lead: Lead
    created: bool
    changes: dict[str, list[Any]]  # field -> [old, new]


def upsert_lead(
    email: str, values: Mapping[str, Any] | None = None, *, source: str = "system"
) -> Upsert:
    """Find the lead by normalised email or create it, then merge `values`.

    New values fill blanks and replace changed values; a blank never erases data. Unknown keys
    are kept in `attributes`. The returned changes are for the caller's event. A new lead gets
    its first StageChange, credited to `source`.
    """
    identity, display = normalise_email(email)
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == identity))
    created = lead is None
    if lead is None:
        lead = Lead(email=identity, email_display=display, attributes={}, stage=Stage.LEAD.value)
        db.session.add(lead)
        db.session.add(
            StageChange(lead=lead, from_stage=None, to_stage=lead.stage, actor=source,
                        reason=f"Created by {source}", changed_at=utcnow())
        )
    profile = {key: getattr(lead, key) for key in PROFILE_FIELDS}
    updates, attributes, changes = merge_values(profile, lead.attributes or {}, values or {})
    for key, value in updates.items():
        setattr(lead, key, value)
    if attributes != (lead.attributes or {}):
        lead.attributes = attributes
    if not created and display != lead.email_display:
        lead.email_display = display
    db.session.flush()
    if created:
        from app.privacy.erased import on_new_lead

        on_new_lead(lead)  # an erased address comes back suppressed from marketing email
    return Upsert(lead=lead, created=created, changes=changes)


def merge_values(profile: Mapping[str, Any], attributes: Mapping[str, Any],
                 values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any],
                                                     dict[str, list[Any]]]:
    """Merge submitted `values` into a lead's profile columns and attributes, as `upsert_lead`
    does: (profile columns to set, the whole new attributes, changes as field -> [old, new]).
    New values fill blanks and replace changed values; a blank never erases data. Pure, so
    batch writers (the intake processor) merge exactly as the ORM path does."""
    updates: dict[str, Any] = {}
    changes: dict[str, list[Any]] = {}
    merged = dict(attributes)
    for key, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, str):
            value = value.strip()
        if key in PROFILE_FIELDS:
            old = updates.get(key, profile.get(key)) or ""
            # Longer than the column: keep what fits (the submission keeps every character),
            # rather than lose the lead to a database error.
            value = str(value)[: PROFILE_LENGTHS[key]]
            if key == "country":
                value = value.upper()
            if old != value:
                updates[key] = value
                changes[key] = [old, value]
        else:
            old = merged.get(key)
            if old != value:
                merged[key] = value
                changes[key] = [old, value]
    return updates, merged, changes


def record_event(
    lead: Lead | None,
    type: str,
    *,
    occurred_at: datetime | None = None,
    campaign_id: int | None = None,
    url: str | None = None,
    data: Mapping[str, Any] | None = None,
    is_bot: bool = False,
    bot_reason: str | None = None,
    visitor_id: str | None = None,
    dedupe_key: str | None = None,
    flush: bool = True,
) -> Event | None:
    """Append an event. With a `dedupe_key` seen before, nothing is written and None returned.

    `flush=False` leaves the INSERT to the caller's next flush or commit (several events of one
    transaction then go in one statement); the returned event has no id until then."""
    if dedupe_key is not None:
        exists = db.session.scalar(sa.select(Event.id).where(Event.dedupe_key == dedupe_key))
        if exists is not None:
            return None
    # The nurture email it is about goes to its columns (`Event.details` shows it in data).
    rest, send_id, step_id = split_send(dict(data or {}))
    event = Event(
        lead=lead,
        type=type,
        occurred_at=occurred_at or utcnow(),
        campaign_id=campaign_id,
        url=url,
        data=rest,
        send_id=send_id,
        step_id=step_id,
        is_bot=is_bot,
        bot_reason=bot_reason,
        visitor_id=visitor_id,
        dedupe_key=dedupe_key,
    )
    db.session.add(event)
    if lead is not None and not is_bot and type not in NOT_ACTIVITY:
        when = event.occurred_at
        if lead.last_activity_at is None or lead.last_activity_at < when:
            lead.last_activity_at = when
    if flush:
        db.session.flush()
    return event


def change_stage(
    lead: Lead,
    to: Stage | str,
    *,
    reason: str,
    actor: str = "system",
    actor_user_id: int | None = None,
) -> StageChange | None:
    """Move a lead to a stage and record who did it and why. No-op when already there.

    Stage listeners get an outbox row each, in the caller's transaction."""
    to_value = Stage(to).value
    if lead.stage == to_value:
        return None
    change = StageChange(
        lead=lead,
        from_stage=lead.stage,
        to_stage=to_value,
        reason=reason,
        actor=actor,
        actor_user_id=actor_user_id,
        changed_at=utcnow(),
    )
    log.info("stage change: lead %s %s → %s by %s: %s", lead.id, change.from_stage, to_value,
             actor, reason[:200])
    lead.stage = to_value
    db.session.add(change)
    db.session.flush()
    for job_path in current_app.extensions.get("stage_listeners", []):
        outbox.add(job_path, change.id, dedupe_key=f"{job_path}:{change.id}")
    return change


def add_stage_listener(app: Flask, job_path: str) -> None:
    """Run `job_path(stage_change_id)` (via the outbox, after commit) for every stage change:
    owner assignment and alerts on MQL, CRM webhooks, sequences triggered by a stage."""
    listeners = app.extensions.setdefault("stage_listeners", [])
    if job_path not in listeners:
        listeners.append(job_path)


def add_events_listener(app: Flask, listener: Any) -> None:
    """`listener(lead_ids)` runs after a writer that bypasses the ORM (a bulk INSERT) committed
    new events of these leads: scoring looks at them (the ORM's own flushes it sees itself)."""
    app.extensions.setdefault("events_listeners", []).append(listener)


def events_written(lead_ids: set[int]) -> None:
    """Tell the listeners (after the commit) which leads got new events by a bulk insert."""
    for listener in current_app.extensions.get("events_listeners", []):
        listener(lead_ids)

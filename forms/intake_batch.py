"""The intake processor's set-based path: a batch of intake rows in a handful of statements.

    read:  submissions already made from these rows · earlier submissions of the same values ·
           erased addresses · the leads of these addresses                    (4 SELECTs)
    write: INSERT new leads · UPDATE known leads · INSERT their first stage changes · INSERT
           submissions · INSERT `form_submitted` events · INSERT consent ledger rows · attach
           anonymous events · INSERT outbox rows (RETURNING the new ids by their unique keys)
                                                          (one statement each, at most)

Each row's effect is exactly what `forms.pipeline.apply` makes of the rows one after the other,
in received order: a suspect becomes a quarantined submission; two rows of one address are one
lead (the second merges into what the first wrote) and two submissions; the same values again
within the duplicate window are the first submission. Rows this path leaves alone go to
`pipeline.apply` one by one (`Outcome.left`): a deleted form, an address that does not validate
(any more), an erased address (its suppression and opt-in events are the ORM path's).

Each INSERT or UPDATE is one statement however many rows (`app.db.insert_rows` /
`update_rows`: on PostgreSQL the rows go as one JSON text), each row's idempotency key unique
in the database: the lead's address, the submission's intake id, the event's dedupe key, the outbox
row's dedupe key. Nothing here commits, and nothing survives a `Conflict`: another writer made
one of the batch's leads, events or submissions meanwhile (a second worker, the synchronous
path), so a unique key refused the batch. The processor then rolls the batch's savepoint back
and runs every row through `pipeline.apply`, whose retries settle such races. Rows are written
through the models' tables' column types (their bind processing), so those apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.db import db, insert_rows, update_rows
from app.leads.models import Event, Lead, Stage, StageChange
from app.leads.service import PROFILE_FIELDS, InvalidEmail, merge_values
from app.outbox import OutboxJob
from app.privacy import consent, erased
from app.privacy.models import ConsentPurpose, ConsentRecord, ConsentText, ErasedAddress
from forms import pipeline
from forms.builder import CONSENT, form_class, normalised_email
from forms.models import Form, Intake, Submission, SubmissionStatus
from forms.pipeline import (
    DUPLICATE_WINDOW,
    Context,
    _capped,
    _jsonable,
    _twin_key,
    _utm,
    fingerprint,
    split_values,
    storable,
)

CONFIRMATION_JOB = "forms.jobs.send_confirmation"


class Conflict(Exception):
    """A concurrent writer made a row this batch meant to make: redo the batch row by row."""


@dataclass
class Outcome:
    submission_ids: dict[str, int]  # intake id -> its submission (made now or found)
    left: list[Intake]  # rows for `pipeline.apply`, one by one
    lead_ids: set[int]  # leads with a new event: scoring looks at them after the commit
    outbox_ids: list[int]  # follow-up rows to enqueue after the commit


def context(row: Intake) -> Context:
    """Where an intake row came from, as the pipeline takes it."""
    return Context(
        ip=row.ip, user_agent=row.user_agent, visitor_id=row.visitor_id, channel=row.channel,
        campaign_id=row.campaign_id, landing_page_id=row.landing_page_id,
        utm_defaults=dict(row.utm_defaults or {}), consent_text=row.consent_text,
        consent_version=row.consent_version, received_at=row.received_at)


@dataclass
class _LeadState:
    """A lead as the batch leaves it: read from the database, or made by one of its rows."""

    identity: str
    display: str
    profile: dict[str, Any]
    attributes: dict[str, Any]
    awaiting: bool
    last_activity_at: datetime | None
    id: int | None = None  # None until a new lead is inserted
    new: bool = False


@dataclass
class _Plan:
    """One row's effect, worked out in Python before anything is written."""

    row: Intake
    form: Form
    submission: dict[str, Any]  # the submission's columns (lead_id filled once known)
    lead: _LeadState | None = None  # None: quarantined
    event_data: dict[str, Any] = field(default_factory=dict)
    twin_key: str = ""
    consents: list[tuple[int, int | None]] = field(default_factory=list)  # (purpose, text)


def apply(rows: Sequence[Intake], forms: Mapping[int, Form], now: datetime) -> Outcome:
    """Work out and write the effect of `rows` (claimed, in received order) in the caller's
    transaction. Raises Conflict when a concurrent writer got in the way."""
    done = _made_already([row.id for row in rows])
    outcome = Outcome(submission_ids={}, left=[], lead_ids=set(), outbox_ids=[])
    prepared: list[tuple[Intake, Form, dict[str, Any], dict[str, Any], str, str, str]] = []
    for row in rows:
        form = forms.get(row.form_id)
        if row.id in done:
            outcome.submission_ids[row.id] = done[row.id]
            continue
        if form is None:
            outcome.left.append(row)
            continue
        data, raw = storable(dict(row.data or {})), storable(dict(row.raw or {}))
        identity = display = key = ""
        if not row.suspect_reason:
            email, values, _ = split_values(form, data)
            try:
                identity, display = normalised_email(email)
            except InvalidEmail:
                outcome.left.append(row)  # the pipeline fails it, as before
                continue
            key = fingerprint(form, identity, values)
        prepared.append((row, form, data, raw, identity, display, key))

    suppressed = _erased({identity for *_, identity, _, _ in prepared if identity})
    leads = _known_leads({identity for *_, identity, _, _ in prepared if identity})
    earlier = _earlier_submissions({key for *_, key in prepared if key},
                                   min((row.received_at for row, *_ in prepared), default=now))
    plans: list[_Plan] = []
    duplicates: list[tuple[Intake, _Plan | int]] = []
    recent: dict[str, list[tuple[datetime, _Plan]]] = {}
    for row, form, data, raw, identity, display, key in prepared:
        if identity in suppressed:
            outcome.left.append(row)
            continue
        if row.suspect_reason:
            plans.append(_quarantine_plan(row, form, data, raw))
            continue
        found = _earlier_of(key, row.received_at, earlier, recent)
        if found is not None:  # the same values within the window: the first one stands
            duplicates.append((row, found))
            continue
        plan = _lead_plan(row, form, data, raw, key, identity, display, leads, now)
        plans.append(plan)
        recent.setdefault(key, []).append((row.received_at, plan))

    try:
        _write_leads(list(leads.values()), plans, now)
        _write_submissions(plans, outcome)
        _write_events(plans, now, outcome)
        _write_consents(plans, now)
        _attach_anonymous_events(plans)
        _write_outbox(plans, outcome)
    except IntegrityError as exc:  # a unique key: someone else made one of these rows first
        raise Conflict(str(exc.orig)[:300]) from exc
    for row, first in duplicates:
        outcome.submission_ids[row.id] = first if isinstance(first, int) \
            else first.submission["id"]
    return outcome


# -- reads -------------------------------------------------------------------------------------

def _made_already(intake_ids: list[str]) -> dict[str, int]:
    """Rows whose submission exists (a batch that committed, then lost its marks)."""
    found = db.session.execute(sa.select(Submission.intake_id, Submission.id)
                               .where(Submission.intake_id.in_(intake_ids)))
    return {intake_id: submission_id for intake_id, submission_id in found if intake_id}


def _erased(identities: set[str]) -> set[str]:
    if not identities:
        return set()
    digests = {erased.digest(identity): identity for identity in identities}
    hits = db.session.scalars(sa.select(ErasedAddress.digest)
                              .where(ErasedAddress.digest.in_(list(digests))))
    return {digests[digest] for digest in hits}


def _known_leads(identities: set[str]) -> dict[str, _LeadState]:
    if not identities:
        return {}
    table = _table(Lead)
    found = db.session.execute(sa.select(table).where(table.c.email.in_(list(identities))))
    return {row.email: _LeadState(
        identity=row.email, display=row.email_display,
        profile={name: getattr(row, name) for name in PROFILE_FIELDS},
        attributes=dict(row.attributes or {}), awaiting=bool(row.awaiting_confirmation),
        last_activity_at=row.last_activity_at, id=row.id) for row in found}


def _earlier_submissions(keys: set[str], since: datetime) -> dict[str, list[tuple[datetime, int]]]:
    """Submissions that `pipeline._earlier` could find for any row of the batch."""
    if not keys:
        return {}
    found: dict[str, list[tuple[datetime, int]]] = {}
    for key, created_at, submission_id in db.session.execute(
            sa.select(Submission.fingerprint, Submission.created_at, Submission.id).where(
                Submission.fingerprint.in_(list(keys)),
                Submission.created_at >= since - DUPLICATE_WINDOW,
                Submission.status != SubmissionStatus.QUARANTINED.value)):
        found.setdefault(key, []).append((created_at, submission_id))
    return found


def _earlier_of(key: str, at: datetime, stored: Mapping[str, list[tuple[datetime, int]]],
                recent: Mapping[str, list[tuple[datetime, _Plan]]]) -> _Plan | int | None:
    """As `pipeline._earlier`: the newest submission of these values created within the window
    before `at`. One made by this batch is newer than any stored one."""
    cutoff = at - DUPLICATE_WINDOW
    mine = [plan for created_at, plan in recent.get(key, []) if created_at >= cutoff]
    if mine:
        return mine[-1]
    ids = [submission_id for created_at, submission_id in stored.get(key, [])
           if created_at >= cutoff]
    return max(ids) if ids else None


# -- planning ----------------------------------------------------------------------------------

def _base_submission(row: Intake, form: Form, raw: Mapping[str, Any],
                     tracking: Mapping[str, str], ctx: Context) -> dict[str, Any]:
    return {
        "form_id": form.id, "raw": _capped(raw), "ip": ctx.ip,
        "user_agent": ctx.user_agent[:500], "visitor_id": ctx.visitor_id,
        "channel": ctx.channel, "campaign_id": ctx.campaign_id,
        "landing_page_id": ctx.landing_page_id, "intake_id": row.id,
        "created_at": row.received_at, "utm": _utm(ctx, tracking),
        "referrer": tracking.get("referrer", "")[:2000],
        "landing_url": tracking.get("landing_url", "")[:2000],
        "confirmed_at": None, "released_at": None, "released_by_id": None,
    }


def _quarantine_plan(row: Intake, form: Form, data: Mapping[str, Any],
                     raw: Mapping[str, Any]) -> _Plan:
    """As `pipeline._quarantined`: kept for review, no lead, no event, no follow-up."""
    _, _, tracking = split_values(form, data)
    submission = {
        **_base_submission(row, form, raw, tracking, context(row)),
        "status": SubmissionStatus.QUARANTINED.value,
        "quarantine_reason": (row.suspect_reason or "")[:200],
        "email": str(data.get("email") or "")[:320], "values": {}, "fingerprint": "",
        "consent_given": False, "consent_text": "", "consent_version": "", "lead_id": None,
    }
    return _Plan(row=row, form=form, submission=submission)


def _lead_plan(row: Intake, form: Form, data: Mapping[str, Any], raw: Mapping[str, Any],
               key: str, identity: str, display: str, leads: dict[str, _LeadState],
               now: datetime) -> _Plan:
    """As `pipeline._write_lead` (with `upsert_lead`): the lead merged, the submission, the
    event's data and the consents to record."""
    ctx = context(row)
    _, values, tracking = split_values(form, data)
    awaiting = form.double_opt_in
    lead = leads.get(identity)
    created = lead is None
    if lead is None:
        lead = leads[identity] = _LeadState(
            identity=identity, display=display, profile={}, attributes={}, awaiting=False,
            last_activity_at=None, new=True)
    updates, attributes, changes = merge_values(lead.profile, lead.attributes, values)
    lead.profile.update(updates)
    lead.attributes = attributes
    if created and awaiting:
        lead.awaiting = True
    elif not awaiting and lead.awaiting:
        lead.awaiting = False
    if not created:
        lead.display = display
    if lead.last_activity_at is None or lead.last_activity_at < now:
        lead.last_activity_at = now  # `form_submitted` is the lead's own activity
    submission = {
        **_base_submission(row, form, raw, tracking, ctx),
        "status": (SubmissionStatus.PENDING if awaiting else SubmissionStatus.ACCEPTED).value,
        "quarantine_reason": None, "email": identity, "values": _jsonable(values),
        "fingerprint": key,
        "consent_given": bool(data.get(CONSENT)) if form.consent_enabled else False,
        "consent_text": ctx.consent_text or "", "consent_version": ctx.consent_version or "",
    }
    event_data = {"form_id": form.id, "form": form.name, "new_lead": created,
                  "changes": _jsonable(changes), "utm": submission["utm"],
                  "channel": ctx.channel}
    return _Plan(row=row, form=form, submission=submission, lead=lead, event_data=event_data,
                 twin_key=_twin_key(key, row.received_at),
                 consents=[(purpose_id, text_id) for name, purpose_id, text_id
                           in form_class(form).consent_purposes if data.get(name)])


# -- writes ------------------------------------------------------------------------------------

def _table(model: Any) -> sa.Table:
    return cast(sa.Table, model.__table__)


def _insert(model: Any, rows: list[dict[str, Any]], key: str | None = None) -> dict[Any, int]:
    """INSERT the rows in one statement (`app.db.insert_rows`: on PostgreSQL one JSON text
    however many rows); with `key`, the new rows' ids by that unique column."""
    table = _table(model)
    if key is None:
        insert_rows(table, rows)
        return {}
    return dict(insert_rows(table, rows, (table.c[key], table.c.id)))


def _write_leads(states: list[_LeadState], plans: list[_Plan], now: datetime) -> None:
    """New leads (one another writer made first breaks the unique address: the batch goes row
    by row), their first stage change, and every known lead of the batch as it now stands."""
    touched = {id(plan.lead) for plan in plans if plan.lead is not None}
    states = [state for state in states if id(state) in touched]
    table = _table(Lead)
    # In address and id order: two workers' batches lock shared leads in the same order.
    new = sorted((state for state in states if state.new), key=lambda s: s.identity)
    if new:
        made = _insert(Lead, [
            {"email": s.identity, "email_display": s.display,
             **{name: s.profile.get(name) or "" for name in PROFILE_FIELDS},
             "attributes": s.attributes, "stage": Stage.LEAD.value,
             "awaiting_confirmation": s.awaiting, "last_activity_at": s.last_activity_at,
             "created_at": now, "updated_at": now} for s in new], "email")
        for state in new:
            state.id = made[state.identity]
        sources = {id(plan.lead): f"form “{plan.form.name}”" for plan in reversed(plans)
                   if plan.lead is not None}
        _insert(StageChange, [
            {"lead_id": s.id, "from_stage": None, "to_stage": Stage.LEAD.value,
             "actor": sources[id(s)], "reason": f"Created by {sources[id(s)]}",
             "actor_user_id": None, "changed_at": now} for s in new])
    known = sorted((state for state in states if not state.new), key=lambda s: s.id or 0)
    if known:
        # Every value is set (none is None: `update_rows` would keep the stored one).
        update_rows(table, [
            {"id": s.id, "email_display": s.display, "attributes": s.attributes,
             "awaiting_confirmation": s.awaiting, "last_activity_at": s.last_activity_at,
             "updated_at": now, **{name: s.profile.get(name) or "" for name in PROFILE_FIELDS}}
            for s in known])


def _write_submissions(plans: list[_Plan], outcome: Outcome) -> None:
    if not plans:
        return
    for plan in plans:
        plan.submission["lead_id"] = plan.lead.id if plan.lead is not None else None
    made = _insert(Submission, [plan.submission for plan in plans], "intake_id")
    for plan in plans:
        plan.submission["id"] = outcome.submission_ids[plan.row.id] = made[plan.row.id]


def _write_events(plans: list[_Plan], now: datetime, outcome: Outcome) -> None:
    """`form_submitted`, keyed as `pipeline._write_lead` keys it: a twin recorded meanwhile
    breaks the unique key, and the batch goes row by row."""
    rows = [{"lead_id": plan.lead.id, "type": "form_submitted", "occurred_at": now,
             "campaign_id": plan.submission["campaign_id"],
             "url": plan.submission["landing_url"] or None,
             "data": {**plan.event_data, "submission_id": plan.submission["id"]},
             "is_bot": False, "bot_reason": None, "visitor_id": plan.submission["visitor_id"],
             "dedupe_key": plan.twin_key}
            for plan in plans if plan.lead is not None]
    if not rows:
        return
    _insert(Event, rows)
    outcome.lead_ids.update(row["lead_id"] for row in rows)


def _write_consents(plans: list[_Plan], now: datetime) -> None:
    """As `forms.consents.record`: a grant per ticked purpose, with the text the form shows
    (the purpose's current one when that is gone); a purpose deleted since is skipped."""
    rows = []
    for plan in plans:
        for purpose_id, text_id in plan.consents:
            purpose = db.session.get(ConsentPurpose, purpose_id)
            if purpose is None or plan.lead is None:
                continue
            text = consent.text_at(purpose, plan.row.received_at)  # what the form showed then
            if text is None and text_id is not None:
                text = db.session.get(ConsentText, text_id)
            text = text or purpose.current_text
            rows.append({"lead_id": plan.lead.id, "purpose_id": purpose_id,
                         "text_id": text.id if text is not None else None, "granted": True,
                         "source": "form", "detail": f"form “{plan.form.name}”"[:300],
                         "ip": plan.submission["ip"][:45],
                         "created_at": plan.row.received_at or now})
    if rows:
        _insert(ConsentRecord, rows)


def _attach_anonymous_events(plans: list[_Plan]) -> None:
    """As `pipeline._attach_anonymous_events`, for the batch: a browser's anonymous events join
    the lead of its first submission in the batch (later ones find none left, as before)."""
    owners: dict[str, int] = {}
    for plan in plans:
        visitor_id = plan.submission["visitor_id"]
        if plan.lead is not None and visitor_id and visitor_id not in owners:
            assert plan.lead.id is not None
            owners[visitor_id] = plan.lead.id
    if not owners:
        return
    table = _table(Event)
    db.session.execute(
        sa.update(table)
        .where(table.c.visitor_id.in_(list(owners)), table.c.lead_id.is_(None))
        .values(lead_id=sa.case(owners, value=table.c.visitor_id)))


def _write_outbox(plans: list[_Plan], outcome: Outcome) -> None:
    """The opt-in email of a double opt-in submission; else, per submission listener, one row
    per submission, or one for the whole batch when the listener takes batches."""
    listeners = pipeline.listeners()
    rows = []
    accepted: list[int] = []
    for plan in plans:
        if plan.lead is None:
            continue
        submission_id = plan.submission["id"]
        if plan.form.double_opt_in:
            rows.append({"job": CONFIRMATION_JOB, "args": [submission_id], "queue": "mail",
                         "dedupe_key": f"confirm:{submission_id}"})
        else:
            accepted.append(submission_id)
    for listener in listeners:
        groups = [accepted] if listener.batch and accepted else [[i] for i in accepted]
        rows += [{"job": listener.job, "args": listener.args(ids), "queue": listener.queue,
                  "dedupe_key": listener.dedupe_key(ids)} for ids in groups]
    if not rows:
        return
    outcome.outbox_ids += sorted(_insert(OutboxJob, rows, "dedupe_key").values())


__all__ = ["Conflict", "Outcome", "apply", "context"]

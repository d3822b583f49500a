"""The submission pipeline: one database transaction from a valid form to a lead.

    lead upsert + submission + `form_submitted` event + outbox rows for follow-up work

Follow-up work belongs to other packages (the asset email to campaigns, enrollment to nurture):
they register listener jobs with `add_submission_listener`, and each accepted submission gets one
outbox row per listener, enqueued after the commit. Forms never sends email or scores directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from app import outbox
from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.leads.service import record_event, upsert_lead
from forms import consents
from forms.builder import (
    CONSENT,
    EMBED_TOKEN,
    HONEYPOT,
    TIME_ZONE,
    TIMESTAMP,
    TRACKING_FIELDS,
    bind,
    normalised_email,
)
from forms.models import Form, Submission, SubmissionStatus

DUPLICATE_WINDOW = timedelta(minutes=10)
DUPLICATE_ATTEMPTS = 3  # a racing twin costs one retry; a racing new lead one more
RAW_VALUE_CAP = 2000  # characters kept per raw value
RAW_KEYS_CAP = 100  # raw values kept per submission


def add_submission_listener(app: Flask, job_path: str, *, batch: bool = False,
                            queue: str = "default") -> None:
    """Run `job_path(submission_id)` (via the outbox, on `queue`) for every accepted submission.

    `batch=True`: `job_path(submission_ids)` takes a list of ids instead. The intake processor
    then writes one outbox row (one RQ job) per batch for it, not one per submission; every
    other path (release, confirmation, the row-by-row fallback) hands it a list of one. Such a
    job must be safe to run again over ids it has done (`app.jobs.each` helps): a retried or
    redelivered batch sees them again."""
    listeners = app.extensions.setdefault("submission_listeners", [])
    if job_path not in listeners:
        listeners.append(job_path)
    app.extensions.setdefault("submission_listener_options", {})[job_path] = (batch, queue)


@dataclass(frozen=True)
class Listener:
    job: str
    batch: bool = False
    queue: str = "default"

    def dedupe_key(self, submission_ids: list[int]) -> str:
        """The outbox row's key: one row per listener and submission, or per listener and
        batch (named by its first submission: a submission is in one batch only)."""
        if self.batch and len(submission_ids) > 1:
            return f"{self.job}:batch:{min(submission_ids)}"
        return f"{self.job}:{submission_ids[0]}"

    def args(self, submission_ids: list[int]) -> list[Any]:
        return [sorted(submission_ids)] if self.batch else [submission_ids[0]]


def listeners() -> list[Listener]:
    """The registered submission listeners, in registration order."""
    options = current_app.extensions.get("submission_listener_options", {})
    return [Listener(path, *options.get(path, (False, "default")))
            for path in current_app.extensions.get("submission_listeners", [])]


@dataclass
class Context:
    """Where a submission came from: everything that is not a form field."""

    ip: str = ""
    user_agent: str = ""
    visitor_id: str | None = None
    channel: str = "hosted"
    campaign_id: int | None = None
    landing_page_id: int | None = None
    utm_defaults: dict[str, str] = field(default_factory=dict)
    # The consent wording when the visitor submitted (intake rows keep it); None: the form's.
    consent_text: str | None = None
    consent_version: str | None = None
    # When the visitor submitted (intake rows keep it); None: now. Consents are given then.
    received_at: datetime | None = None


@dataclass
class Result:
    submission: Submission
    lead: Lead | None
    duplicate: bool = False
    # Read before the commit expires `submission`: no query just to learn the id afterwards.
    submission_id: int | None = None

    @property
    def status(self) -> str:
        return self.submission.status


def fingerprint(form: Form, email: str, values: Mapping[str, Any]) -> str:
    payload = json.dumps([form.id, email, sorted((k, str(v)) for k, v in values.items())])
    return hashlib.sha256(payload.encode()).hexdigest()


def _capped(raw: Mapping[str, Any]) -> dict[str, str]:
    """What was posted, for review and release: secrets dropped, keys and values capped."""
    skip = {"csrf_token", TIMESTAMP, EMBED_TOKEN}
    kept = [(str(k)[:100], str(v)[:RAW_VALUE_CAP]) for k, v in raw.items() if k not in skip]
    return dict(kept[:RAW_KEYS_CAP])


def split_values(form: Form, data: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(email, the lead's values, tracking values) from validated form data."""
    email = ""
    values: dict[str, Any] = {}
    for spec in form.fields:
        value = data.get(spec.name)
        if spec.type == "email":
            email = value or ""
            continue
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            continue
        values[spec.name] = value
    zone = time_zone(data.get(TIME_ZONE))
    if zone and "timezone" not in values:  # a form's own timezone field wins
        values["timezone"] = zone
    tracking = {name: str(data.get(name) or "").strip() for name in TRACKING_FIELDS}
    return email, values, {k: v for k, v in tracking.items() if v}


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def time_zone(value: Any) -> str | None:
    """The browser's IANA zone name when it is one (a lead's `timezone` attribute), else None."""
    name = str(value or "").strip()
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return None
    return name if _known_zone(name) else None


def _utm(ctx: Context, tracking: Mapping[str, str]) -> dict[str, str]:
    """The visitor's own UTM values; the campaign's defaults only when they brought none (a mix
    would credit one visit to two sources, e.g. their utm_source with our utm_medium)."""
    posted = {k: v for k, v in tracking.items() if k.startswith("utm_") or k == "gclid"}
    if any(k.startswith("utm_") for k in posted):
        return posted
    return {**ctx.utm_defaults, **posted}


def quarantine(form: Form, data: Mapping[str, Any], raw: Mapping[str, Any], ctx: Context,
               reason: str) -> Result:
    """Keep a suspect submission for review: no lead, no event, no follow-up."""
    submission = _quarantined(form, data, raw, ctx, reason)
    submission_id = submission.id
    db.session.commit()
    return Result(submission=submission, lead=None, submission_id=submission_id)


def _quarantined(form: Form, data: Mapping[str, Any], raw: Mapping[str, Any], ctx: Context,
                 reason: str) -> Submission:
    _, _, tracking = split_values(form, data)
    submission = Submission(
        form=form, status=SubmissionStatus.QUARANTINED.value, quarantine_reason=reason[:200],
        email=str(data.get("email") or "")[:320], values={}, raw=_capped(raw),
        utm=_utm(ctx, tracking), referrer=tracking.get("referrer", "")[:2000],
        landing_url=tracking.get("landing_url", "")[:2000],
        ip=ctx.ip, user_agent=ctx.user_agent[:500], visitor_id=ctx.visitor_id,
        channel=ctx.channel, campaign_id=ctx.campaign_id, landing_page_id=ctx.landing_page_id,
    )
    db.session.add(submission)
    db.session.flush()
    return submission


class _Twin(Exception):
    """A concurrent twin of this submission committed first (see `accept`)."""


def _earlier(fingerprint: str, at: datetime | None = None) -> Submission | None:
    return db.session.scalar(
        sa.select(Submission).where(
            Submission.fingerprint == fingerprint,
            Submission.created_at >= (at or utcnow()) - DUPLICATE_WINDOW,
            Submission.status != SubmissionStatus.QUARANTINED.value,
        ).order_by(Submission.id.desc()).limit(1)
    )


def _twin_key(fingerprint: str, at: datetime | None = None) -> str:
    """The `form_submitted` event's dedupe key: unique in the database, so of two identical
    posts in flight together (a double click) only one can commit. Bucketed by the window."""
    bucket = int((at or utcnow()).timestamp() // DUPLICATE_WINDOW.total_seconds())
    return f"form_submitted:{fingerprint}:{bucket}"


def accept(form: Form, data: Mapping[str, Any], raw: Mapping[str, Any], ctx: Context) -> Result:
    """Write the lead, the submission, the event and the follow-up work in one commit.

    The same submission again within the window (double click, retried request) returns the
    first one. When both are in flight at once, both pass the check; the unique event key (or
    the unique lead email) then refuses the second commit, which rolls back and finds the first.
    """
    email, values, _ = split_values(form, data)
    identity, _ = normalised_email(email)
    key = fingerprint(form, identity, values)
    for attempt in range(DUPLICATE_ATTEMPTS):
        earlier = _earlier(key)
        if earlier is not None:  # double click or a retried request: the first one stands
            return Result(submission=earlier, lead=earlier.lead, duplicate=True)
        try:
            return _accept_once(form, data, raw, ctx, key)
        except (_Twin, IntegrityError):
            db.session.rollback()
            if attempt == DUPLICATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _accept_once(form: Form, data: Mapping[str, Any], raw: Mapping[str, Any], ctx: Context,
                 fingerprint: str) -> Result:
    pending = form.double_opt_in
    submission = _new_submission(form, raw, ctx, fingerprint)
    # Added by `_write_lead` once complete: one INSERT, not an INSERT and an UPDATE.
    lead = _write_lead(form, submission, data, ctx, dedupe_key=_twin_key(fingerprint),
                       awaiting=pending)
    if pending:
        _ask_for_confirmation(submission)
    else:
        schedule_follow_up(submission)
    submission_id = submission.id
    db.session.commit()
    return Result(submission=submission, lead=lead, submission_id=submission_id)


def _new_submission(form: Form, raw: Mapping[str, Any], ctx: Context, fingerprint: str,
                    **extra: Any) -> Submission:
    """An accepted (or, with double opt-in, pending) submission, not yet added."""
    status = SubmissionStatus.PENDING if form.double_opt_in else SubmissionStatus.ACCEPTED
    return Submission(
        form=form, raw=_capped(raw), fingerprint=fingerprint, status=status.value,
        ip=ctx.ip, user_agent=ctx.user_agent[:500], visitor_id=ctx.visitor_id, channel=ctx.channel,
        campaign_id=ctx.campaign_id, landing_page_id=ctx.landing_page_id, **extra,
    )


def _write_lead(form: Form, submission: Submission, data: Mapping[str, Any],
                ctx: Context, *, dedupe_key: str | None = None, awaiting: bool = False,
                **event_data: Any) -> Lead:
    """Upsert the lead from validated data, fill the submission, record `form_submitted`.
    `awaiting`: a double opt-in submission; a lead it creates awaits confirmation, and a lead
    that awaited it and now submits a form without double opt-in no longer does."""
    email, values, tracking = split_values(form, data)
    utm = _utm(ctx, tracking)
    upsert = upsert_lead(email, values, source=f"form “{form.name}”")
    lead = upsert.lead
    if upsert.created and awaiting:
        lead.awaiting_confirmation = True
    elif not awaiting and lead.awaiting_confirmation:
        lead.awaiting_confirmation = False
    submission.lead = lead
    submission.email = lead.email
    submission.values = _jsonable(values)
    submission.consent_given = bool(data.get(CONSENT)) if form.consent_enabled else False
    if ctx.consent_text is not None:
        submission.consent_text = ctx.consent_text
        submission.consent_version = ctx.consent_version or ""
    else:
        submission.consent_text = form.consent_text if form.consent_enabled else ""
        submission.consent_version = form.consent_version if form.consent_enabled else ""
    submission.utm = utm
    submission.referrer = tracking.get("referrer", "")[:2000]
    submission.landing_url = tracking.get("landing_url", "")[:2000]
    db.session.add(submission)  # a no-op for a released submission, already stored
    db.session.flush()
    consents.record(form, lead, data, ctx.ip, at=ctx.received_at, opt_in=not awaiting)
    event = record_event(lead, "form_submitted", campaign_id=ctx.campaign_id,
                         url=submission.landing_url or None,
                         data={"form_id": form.id, "form": form.name,
                               "submission_id": submission.id, "new_lead": upsert.created,
                               "changes": _jsonable(upsert.changes), "utm": utm,
                               "channel": ctx.channel, **event_data},
                         visitor_id=ctx.visitor_id, dedupe_key=dedupe_key)
    if event is None:
        raise _Twin(dedupe_key)
    if ctx.visitor_id:
        _attach_anonymous_events(lead, ctx.visitor_id)
    return lead


def _ask_for_confirmation(submission: Submission) -> None:
    outbox.add("forms.jobs.send_confirmation", submission.id, queue_name="mail",
               dedupe_key=f"confirm:{submission.id}")


class NotReleasable(ValueError):
    """The quarantined submission cannot become a lead; `errors` says why, per field."""

    def __init__(self, errors: Mapping[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = dict(errors)


def release(submission: Submission, user_id: int | None) -> Result:
    """A marketer vouches for a quarantined submission: it becomes a lead like any other.

    The posted values are validated again (the spam checks are not: that is the marketer's
    call). On a double opt-in form the person still has to confirm their address; otherwise
    the follow-up listeners run now. Raises NotReleasable when the values are not valid.
    """
    if submission.status != SubmissionStatus.QUARANTINED.value:
        raise NotReleasable({"status": [f"This submission is {submission.status}."]})
    form = submission.form
    instance = bind(form, submission.raw or {})
    if not instance.validate():
        raise NotReleasable(instance.errors)
    data = dict(instance.data)
    ctx = Context(ip=submission.ip, user_agent=submission.user_agent,
                  visitor_id=submission.visitor_id, channel=submission.channel,
                  campaign_id=submission.campaign_id, landing_page_id=submission.landing_page_id,
                  utm_defaults=dict(submission.utm or {}))
    lead = _write_lead(form, submission, data, ctx, awaiting=form.double_opt_in,
                       released_by_id=user_id)
    email, values, _ = split_values(form, data)
    submission.fingerprint = fingerprint(form, normalised_email(email)[0], values)
    submission.status = SubmissionStatus.RELEASED.value
    submission.released_at = utcnow()
    submission.released_by_id = user_id
    if form.double_opt_in:
        _ask_for_confirmation(submission)
    else:
        schedule_follow_up(submission)
    db.session.commit()
    return Result(submission=submission, lead=lead)


def schedule_follow_up(submission: Submission) -> None:
    """One outbox row per registered listener (asset email, enrollment, ...)."""
    for listener in listeners():
        ids = [submission.id]
        outbox.add(listener.job, *listener.args(ids), queue_name=listener.queue,
                   dedupe_key=listener.dedupe_key(ids))


def _attach_anonymous_events(lead: Lead, visitor_id: str) -> None:
    """Earlier anonymous activity of this browser joins the lead's timeline. Events that already
    belong to another lead stay where they are: two people on one browser stay two leads."""
    db.session.execute(
        sa.update(Event)
        .where(Event.visitor_id == visitor_id, Event.lead_id.is_(None))
        .values(lead_id=lead.id)
    )


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))


def storable(value: Any) -> Any:
    """Posted text as the database can keep it: NUL characters dropped (PostgreSQL refuses them
    in text and JSON columns) and lone surrogates replaced (they cannot be written as UTF-8).
    Lists and mappings are cleaned all the way down."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, Mapping):
        return {storable(k): storable(v) for k, v in value.items()}
    return value


def apply(form: Form, data: Mapping[str, Any], raw: Mapping[str, Any], ctx: Context,
          suspect_reason: str | None, *, intake_id: str, received_at: datetime) -> int:
    """One intake row's effect, in the caller's transaction (the intake processor commits a
    batch at once): a quarantined submission for a suspect; else the lead, the submission, the
    `form_submitted` event and the follow-up outbox rows (or the opt-in email). Returns the
    submission's id. Safe to run twice: the submission's unique `intake_id` makes it once, and
    the same post within the window returns the first submission."""
    done = db.session.scalar(sa.select(Submission.id).where(Submission.intake_id == intake_id))
    if done is not None:
        return done
    data, raw = storable(data), storable(raw)
    if suspect_reason:
        submission = _quarantined(form, data, raw, ctx, suspect_reason)
        submission.intake_id = intake_id
        submission.created_at = received_at
        db.session.flush()
        return submission.id
    email, values, _ = split_values(form, data)
    key = fingerprint(form, normalised_email(email)[0], values)
    earlier = _earlier(key, received_at)
    if earlier is not None:  # a retried request after the window's bucket turned
        return earlier.id
    pending = form.double_opt_in
    submission = _new_submission(form, raw, ctx, key, intake_id=intake_id,
                                 created_at=received_at)
    _write_lead(form, submission, data, ctx, dedupe_key=_twin_key(key, received_at),
                awaiting=pending)
    if pending:
        _ask_for_confirmation(submission)
    else:
        schedule_follow_up(submission)
    return submission.id


__all__ = [
    "HONEYPOT",
    "Context",
    "Listener",
    "NotReleasable",
    "Result",
    "accept",
    "add_submission_listener",
    "apply",
    "listeners",
    "quarantine",
    "release",
    "schedule_follow_up",
    "split_values",
]

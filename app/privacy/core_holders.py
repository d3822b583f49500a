"""The core's own personal data, registered with `app.privacy.holders`: consents, events, stage
history, mail ledger rows, outcomes, sales handoffs and alerts, the local outbox files under the
instance folder, and whatever Redis holds (queued jobs, tracking buffers)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode

import sqlalchemy as sa
from flask import Flask

from app.db import chunks, db
from app.leads.event_columns import SEND_KEYS, with_send
from app.leads.models import ERASED_DISPLAY, Event, Lead, StageChange
from app.privacy import consent, stores
from app.privacy.holders import Found, OtherHolder, TableHolder, add_holder, jsonable


def _consents(lead: Lead) -> list[dict[str, Any]]:
    return [{"purpose": row.purpose.key, "purpose_name": row.purpose.name,
             "granted": row.granted, "text": row.text.text if row.text else None,
             "text_version": row.text.version if row.text else None, "source": row.source,
             "detail": row.detail, "ip": row.ip, "at": jsonable(row.created_at)}
            for row in consent.history(lead.id)]


def _events(lead: Lead) -> list[dict[str, Any]]:
    """The lead's events as stored, with the nurture email each is about (the columns
    send_id / step_id) shown in its data, as the timeline and the webhooks show it."""
    table = Event.__table__
    rows = db.session.execute(sa.select(table).where(table.c.lead_id == lead.id)
                              .order_by(table.c.occurred_at, table.c.id))
    out = []
    for row in rows:
        document = {key: jsonable(value) for key, value in row._mapping.items()
                    if key not in SEND_KEYS}
        document["data"] = with_send(row.data, row.send_id, row.step_id)
        out.append(document)
    return out


# Event data the rollups read and that says nothing about the person: where it came from.
KEPT_EVENT_KEYS = frozenset({"channel", "utm", "form", "sequence", "kind", "stage",
                             "from_stage", "to_stage"})


def scrub_event_data(data: Any, identity: str) -> dict[str, Any]:
    """What an erased person's event keeps: numbers and flags, ids (`*_id`, read by the email
    report), the categories in KEPT_EVENT_KEYS; never a value holding the address. Free text
    (profile changes, sources, reasons, addresses) goes."""
    kept: dict[str, Any] = {}
    for key, value in (data or {}).items() if isinstance(data, dict) else ():
        structural = isinstance(value, (bool, int, float)) or key.endswith("_id") \
            or key in KEPT_EVENT_KEYS
        if structural and identity not in json.dumps(value, default=str).lower():
            kept[key] = value
    return kept


def _erase_events(found: Found, keys: list[Any]) -> int:
    """Events stay (counted by rollups and scores), without what says who the person was: the
    URL, the browser id, the dedupe key (it may hash the address), the free text in the data."""
    for part in chunks(keys):
        rows = db.session.execute(sa.select(Event.id, Event.data).where(Event.id.in_(part)))
        for event_id, data in rows.all():
            db.session.execute(sa.update(Event).where(Event.id == event_id).values(
                data=scrub_event_data(data, found.identity), url=None, visitor_id=None,
                dedupe_key=None))
    return len(keys)


def _stage_change_ids(lead_id: int) -> Any:
    return sa.select(StageChange.id).where(StageChange.lead_id == lead_id)


def _webhook_message_ids(lead_id: int) -> Any:
    from app.webhooks.models import WebhookMessage

    lead = WebhookMessage.payload["data"]["lead"]["id"].as_integer()
    return sa.select(WebhookMessage.id).where(lead == lead_id)


def _bulk_jobs_naming(identity: str) -> Any:
    """Bulk actions whose skip reasons (`app.leads.bulk`: each line is "<address as shown>:
    <why>") or whose filter (a search for the address) may name it; compared exactly after."""
    from app.leads.bulk import BulkJob

    return sa.select(BulkJob.id).where(sa.or_(*(
        sa.func.lower(sa.cast(column, sa.Text)).contains(identity, autoescape=True)
        for column in (BulkJob.reasons, BulkJob.query))))


def _names(line: Any, identity: str) -> bool:
    address, sep, _ = str(line).partition(": ")
    return bool(sep) and address.strip().lower() == identity


def _bulk_reasons(lead: Lead) -> list[dict[str, Any]]:
    """The lines about this lead only: the jobs' other lines are about other people."""
    from app.leads.bulk import BulkJob

    return [{"bulk_job_id": bulk.id, "action": bulk.action,
             "created_at": jsonable(bulk.created_at), "reason": line}
            for bulk in db.session.scalars(sa.select(BulkJob).where(
                BulkJob.id.in_(_bulk_jobs_naming(lead.email))).order_by(BulkJob.id))
            for line in bulk.reasons or [] if _names(line, lead.email)]


def _erase_bulk_reasons(found: Found, keys: list[Any]) -> int:
    """The line stays (the skipped count adds up), its address replaced; a search for the
    address in the job's filter becomes one that matches nobody (a job still running on it
    acts on no one else)."""
    from app.leads.bulk import BulkJob
    from app.privacy.erase import ADDRESS_IN_REASON

    changed = 0
    for bulk in db.session.scalars(sa.select(BulkJob).where(BulkJob.id.in_(keys))):
        reasons = [f"{ERASED_DISPLAY}: {str(line).partition(': ')[2]}"
                   if _names(line, found.identity) else line for line in bulk.reasons or []]
        query = {key: ADDRESS_IN_REASON if isinstance(value, str)
                 and value.strip().lower() == found.identity else value
                 for key, value in (bulk.query or {}).items()}
        if reasons != bulk.reasons or query != bulk.query:
            bulk.reasons, bulk.query = reasons, query
            changed += 1
    return changed


def _saved_views_naming(identity: str) -> Any:
    """Saved views of the leads list whose name or query string (URL-escaped) may name the
    address; compared exactly after."""
    from app.leads.saved_views import SavedView

    needles = {identity, quote_plus(identity).lower()}
    return sa.select(SavedView.id).where(sa.or_(*(
        sa.func.lower(column).contains(needle, autoescape=True)
        for column in (SavedView.name, SavedView.query) for needle in needles)))


def _erase_saved_views(found: Found, keys: list[Any]) -> int:
    """A search for the address becomes one that matches nobody; a name that is the address
    is replaced the same way. The rest of the view (its other filters) stays."""
    from app.leads.saved_views import SavedView
    from app.privacy.erase import ADDRESS_IN_REASON

    def plain(value: str) -> str:
        return ADDRESS_IN_REASON if value.strip().lower() == found.identity else value

    changed = 0
    for view in db.session.scalars(sa.select(SavedView).where(SavedView.id.in_(keys))):
        query = urlencode([(key, plain(value)) for key, value
                           in parse_qsl(view.query or "", keep_blank_values=True)])
        name = plain(view.name)
        if query != view.query or name != view.name:
            view.query, view.name = query, name
            changed += 1
    return changed


def register(app: Flask) -> None:
    holders: list[TableHolder | OtherHolder] = [
        TableHolder("consents", "consent_records", export=_consents),
        TableHolder("events", "events", scrub={}, erase=_erase_events, export=_events,
                    order_by="occurred_at"),
        TableHolder("stage_history", "stage_changes", scrub={"reason": ""},
                    order_by="changed_at"),
        TableHolder("notes", "lead_notes", order_by="created_at"),
        TableHolder("tasks", "lead_tasks", order_by="created_at"),
        TableHolder("emails", "mail_deliveries", scrub={"subject": "", "error": None}),
        TableHolder("outcomes", "lead_outcomes", scrub={"reason": "", "external_id": None}),
        TableHolder("sales_handoffs", "sales_assignments",
                    scrub={"reason": "", "decision_reason": ""}),
        TableHolder("alerts", "sales_alerts", scrub={"data": {}, "last_error": None}),
        TableHolder("crm_webhook_deliveries", "sales_webhook_deliveries", lead_column=None,
                    via=_stage_change_ids, scrub={"error": None}),
        # Outgoing webhooks carry the lead's document; a pending one goes out emptied.
        TableHolder("webhook_messages", "webhook_messages", lead_column=None,
                    via=_webhook_message_ids, scrub={"payload": {"erased": True}}),
        # A bulk action's skip reasons, one line per lead it skipped, by address.
        TableHolder("bulk_action_reasons", "lead_bulk_jobs", lead_column=None,
                    by_address=_bulk_jobs_naming, erase=_erase_bulk_reasons,
                    export=_bulk_reasons),
        # A marketer's saved search for the person (not their data: nothing exported).
        TableHolder("saved_views", "lead_saved_views", lead_column=None,
                    by_address=_saved_views_naming, erase=_erase_saved_views,
                    export=lambda lead: []),
        OtherHolder("instance files", stores.erase_files),
        OtherHolder("redis", stores.erase_redis),
    ]
    for holder in holders:
        add_holder(app, holder)

"""What makes a webhook: stage changes (a stage listener), the API's writes, and the event
log (the bridge: form submissions, emails sent and clicked, unsubscribes — whoever wrote them,
nurture's bulk writers included)."""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa

from app.api.documents import stage_change_document
from app.db import db
from app.jobs import job
from app.leads.models import Event, Lead, StageChange
from app.webhooks.emit import emit, subscribers
from app.webhooks.models import WebhookMark
from app.webhooks.payloads import jsonable, lead_payload

# Event types of the log → webhook event types.
BRIDGED = {"form_submitted": "form.submitted", "email_sent": "email.sent",
           "email_clicked": "email.clicked", "unsubscribed": "lead.unsubscribed"}
BATCH = 1000


def on_stage_change(stage_change_id: int) -> None:
    """Stage listener (outbox job): `lead.stage_changed` with the change and the lead."""
    change = db.session.get(StageChange, stage_change_id)
    if change is None:
        return
    emit("lead.stage_changed",
         lambda: {"stage_change": jsonable(stage_change_document(change)),
                  **lead_payload(change.lead)},
         source_key=f"stage_change:{change.id}")
    db.session.commit()


def lead_written(lead: Lead, *, created: bool, changes: dict[str, list[Any]]) -> None:
    """The API created or updated a lead (in its transaction)."""
    if created:
        emit("lead.created", lambda: lead_payload(lead))
    elif changes:
        emit("lead.updated", lambda: {"changes": changes, **lead_payload(lead)})


def _event_document(event: Event) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "occurred_at": event.occurred_at.isoformat(),
            "url": event.url, "campaign_id": event.campaign_id, "data": event.details}


def _bridged_payload(event: Event) -> dict[str, Any]:
    return {"event": _event_document(event), **lead_payload(event.lead)}


def bridge(limit: int = BATCH) -> int:
    """Periodic: webhooks for new rows of the event log. Each run re-reads from the mark of
    the run before (an event committed late is not missed); `source_key` makes a re-read
    event tell nothing twice. Returns how many messages it made."""
    mark = db.session.get(WebhookMark, "events")
    top = db.session.scalar(sa.select(sa.func.max(Event.id))) or 0
    if mark is None:
        db.session.add(WebhookMark(name="events", value=top, previous=top))
        db.session.commit()
        return 0
    start = mark.previous
    wanted = {t for t in set(BRIDGED.values()) | {"lead.created"} if subscribers(t)}
    made = 0
    highest = mark.value
    if wanted:
        rows = db.session.scalars(
            sa.select(Event).where(Event.id > start, Event.type.in_(list(BRIDGED)),
                                   Event.lead_id.is_not(None), Event.is_bot.is_(False))
            .order_by(Event.id).limit(limit)).all()
        for event in rows:
            highest = max(highest, event.id)
            kinds = [BRIDGED[event.type]]
            if event.type == "form_submitted" and (event.data or {}).get("new_lead"):
                kinds.insert(0, "lead.created")
            for kind in kinds:
                if kind not in wanted:
                    continue
                message = emit(kind, partial(_bridged_payload, event),
                               source_key=f"event:{event.id}:{kind}")
                made += message is not None
        if len(rows) < limit:
            highest = max(highest, top)
    else:
        highest = top
    mark.previous, mark.value = mark.value, highest
    db.session.commit()
    return made


@job
def bridge_job() -> int:
    return bridge()

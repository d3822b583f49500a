"""`POST /api/v1/events`: custom events from other systems, up to 1,000 a request.

Each event names its lead (`email`, created when new, or `lead_id`) and carries the client's
own `id`: a batch sent twice (a retry after a timeout) stores each event once. Events are
stored as `custom.<type>` in the lead's timeline, where scoring rules can count them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask.views import MethodView
from sqlalchemy.exc import IntegrityError

from app.api.errors import field_problem
from app.api.event_batch import EventBatchSchema, EventResultSchema
from app.api.framework import api_blueprint, current_token
from app.db import any_of, db, utcnow
from app.leads import bulk_events
from app.leads.models import ERASED_DISPLAY, Lead
from app.leads.service import InvalidEmail, events_written, normalise_email, upsert_lead

CUSTOM_PREFIX = "custom."

blp = api_blueprint("api_events", __name__, "/events",
                    "Custom events: what a lead did elsewhere, for the timeline and scoring.")


def _leads_for(items: list[dict[str, Any]]) -> dict[int, int] | Any:
    """Index of each item → lead id; a problem response for a bad email or unknown lead id."""
    by_email: dict[str, list[int]] = {}
    by_id: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        if "email" in item:
            try:
                identity, _ = normalise_email(item["email"])
            except InvalidEmail as exc:
                return field_problem(f"events.{index}.email", str(exc))
            by_email.setdefault(identity, []).append(index)
        else:
            by_id.setdefault(item["lead_id"], []).append(index)
    out: dict[int, int] = {}
    if by_id:
        known = {lead_id: display for lead_id, display in db.session.execute(
            sa.select(Lead.id, Lead.email_display).where(any_of(Lead.id, list(by_id))))}
        for lead_id, indexes in by_id.items():
            if lead_id not in known:
                return field_problem(f"events.{indexes[0]}.lead_id",
                                     f"There is no lead {lead_id}.")
            if known[lead_id] == ERASED_DISPLAY:
                return field_problem(f"events.{indexes[0]}.lead_id",
                                     f"Lead {lead_id} was erased on request: it takes no "
                                     "events.")
            out.update(dict.fromkeys(indexes, lead_id))
    if by_email:
        rows = db.session.execute(sa.select(Lead.email, Lead.id)
                                  .where(any_of(Lead.email, list(by_email)))).all()
        found = {email: lead_id for email, lead_id in rows}
        for email, indexes in by_email.items():
            if email not in found:
                found[email] = upsert_lead(items[indexes[0]]["email"], source="api").lead.id
            out.update(dict.fromkeys(indexes, found[email]))
    return out


@blp.route("")
class Events(MethodView):
    @blp.arguments(EventBatchSchema)
    @blp.response(200, EventResultSchema)
    def post(self, body: dict[str, Any]):
        """Record up to 1,000 custom events; events already received (same `id`) are
        skipped."""
        items = body["events"]
        if len(items) > int(current_app.config["API_EVENTS_BATCH_MAX"]):
            return field_problem("events", f"At most {current_app.config['API_EVENTS_BATCH_MAX']}"
                                           " events a request.")
        scope = f"api:{current_token().user_id}:"
        keys = [scope + item["id"] for item in items]
        if len(set(keys)) != len(keys):
            seen: set[str] = set()
            for index, key in enumerate(keys):
                if key in seen:
                    return field_problem(f"events.{index}.id", "This id appears twice in "
                                                               "the batch.")
                seen.add(key)
        try:
            leads = _leads_for(items)
        except IntegrityError:  # a parallel request made one of these leads just now
            db.session.rollback()
            leads = _leads_for(items)
        if not isinstance(leads, dict):
            db.session.rollback()
            return leads
        now = utcnow()
        rows = [{"lead_id": leads[index], "type": CUSTOM_PREFIX + item["type"],
                 "occurred_at": item.get("occurred_at") or now, "url": item.get("url"),
                 "data": item.get("data") or {}, "is_bot": False, "dedupe_key": key}
                for index, (item, key) in enumerate(zip(items, keys, strict=True))]
        # An event already received (this batch sent before, or at the same moment) is
        # skipped, not an error.
        inserted = bulk_events.insert_new(rows)
        db.session.commit()
        events_written(set(inserted))
        return {"received": len(items), "created": len(inserted),
                "duplicates": len(items) - len(inserted)}

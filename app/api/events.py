"""`POST /api/v1/events`: custom events from other systems, up to 1,000 a request.

Each event names its lead (`email`, created when new, or `lead_id`) and carries the client's
own `id`: a batch sent twice (a retry after a timeout) stores each event once. Events are
stored as `custom.<type>` in the lead's timeline, where scoring rules can count them.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app
from flask.views import MethodView
from marshmallow import fields, validate

from app.api.errors import field_problem
from app.api.framework import api_blueprint, current_token
from app.api.schemas import MAX_ID, Strict
from app.db import db, insert_or_skip, utcnow
from app.leads.models import Event, Lead
from app.leads.service import InvalidEmail, events_written, normalise_email, upsert_lead

CUSTOM_PREFIX = "custom."
BATCH_MAX = 1000

blp = api_blueprint("api_events", __name__, "/events",
                    "Custom events: what a lead did elsewhere, for the timeline and scoring.")


class EventInSchema(Strict):
    id = fields.String(required=True, validate=validate.Length(min=1, max=100),
                       metadata={"description": "Your id for the event: sending it again "
                                                "stores nothing new"})
    type = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z][a-z0-9_]{0,32}$", error="Lower-case letters, digits and _ (at most 33), "
                                         "starting with a letter."),
        metadata={"description": "Stored as custom.<type>", "example": "webinar_attended"})
    email = fields.String(validate=validate.Length(min=1, max=320),
                          metadata={"format": "email", "description": "The lead (created "
                                                                      "when new); or lead_id"})
    lead_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    occurred_at = fields.AwareDateTime(metadata={"description": "Default: now"})
    url = fields.String(validate=validate.Length(max=2000))
    data = fields.Dict(keys=fields.String(validate=validate.Length(max=100)),
                       validate=validate.Length(max=50))

    @ma.validates_schema
    def _one_lead(self, item: dict[str, Any], **_kw: Any) -> None:
        if ("email" in item) == ("lead_id" in item):
            raise ma.ValidationError("Give either email or lead_id.", "email")


class EventBatchSchema(Strict):
    events = fields.List(fields.Nested(EventInSchema), required=True,
                         validate=validate.Length(min=1, max=BATCH_MAX))


class EventResultSchema(ma.Schema):
    received = fields.Integer(required=True)
    created = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)


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
        known = set(db.session.scalars(sa.select(Lead.id).where(Lead.id.in_(list(by_id)))))
        for lead_id, indexes in by_id.items():
            if lead_id not in known:
                return field_problem(f"events.{indexes[0]}.lead_id",
                                     f"There is no lead {lead_id}.")
            out.update(dict.fromkeys(indexes, lead_id))
    if by_email:
        rows = db.session.execute(sa.select(Lead.email, Lead.id)
                                  .where(Lead.email.in_(list(by_email)))).all()
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
        leads = _leads_for(items)
        if not isinstance(leads, dict):
            db.session.rollback()
            return leads
        now = utcnow()
        rows = [{"lead_id": leads[index], "type": CUSTOM_PREFIX + item["type"],
                 "occurred_at": item.get("occurred_at") or now, "url": item.get("url"),
                 "data": item.get("data") or {}, "is_bot": False, "dedupe_key": key}
                for index, (item, key) in enumerate(zip(items, keys, strict=True))]
        # One INSERT … ON CONFLICT (dedupe_key) DO NOTHING for the batch: an event already
        # received (this batch sent before, or at the same moment) is skipped, not an error.
        statement = insert_or_skip(Event.__table__, ["dedupe_key"],
                                   db.session.get_bind().dialect.name)
        assert statement is not None  # PostgreSQL and SQLite both have it
        inserted = db.session.execute(statement.returning(Event.__table__.c.lead_id),
                                      rows).all()
        db.session.commit()
        events_written({row[0] for row in inserted})
        return {"received": len(items), "created": len(inserted),
                "duplicates": len(items) - len(inserted)}

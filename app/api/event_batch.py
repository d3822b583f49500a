"""The body of `POST /api/v1/events`: its marshmallow schemas (the OpenAPI document's, and the
judge of every item) and a quick check for the plain, valid item.

A batch is up to 1,000 items; marshmallow costs ~0.1 ms an item, most of a batch's time. The
quick check accepts only an item whose every field is of the plain JSON type and within the
limits the schema states, and returns exactly what the schema would load. Anything else (an
unknown field, a wrong type, a value to coerce, a limit crossed) makes the whole list go
through the schema, so refusals and their messages (`events.<index>.<field>`) are the
schema's own. tests/app/api/test_event_batch.py holds the two to the same answers.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from app.api.schemas import MAX_ID, Strict, has_nul
from app.db import utcnow

BATCH_MAX = 1000
TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,32}$"
ID_MAX = 100
EMAIL_MAX = 320
URL_MAX = 2000
DATA_KEYS_MAX = 50
DATA_KEY_MAX = 100
CLOCK_SKEW = timedelta(hours=1)  # how far ahead of our clock an event may say it happened


def _single_line(value: str) -> None:
    # `$` also matches before a final newline: "abc\n" passes TYPE_PATTERN alone.
    if value.endswith("\n"):
        raise ma.ValidationError("Lower-case letters, digits and _ (at most 33), starting with "
                                 "a letter.")


def _not_ahead(value: Any) -> None:
    # A future event would be its lead's last activity, and score undecayed, until then.
    if value > utcnow() + CLOCK_SKEW:
        raise ma.ValidationError("In the future: an event may be at most an hour ahead of "
                                 "our clock (send the time with its zone).")


class EventInSchema(Strict):
    id = fields.String(required=True, validate=validate.Length(min=1, max=ID_MAX),
                       metadata={"description": "Your id for the event: sending it again "
                                                "stores nothing new"})
    type = fields.String(required=True, validate=[validate.Regexp(
        TYPE_PATTERN, error="Lower-case letters, digits and _ (at most 33), "
                            "starting with a letter."), _single_line],
        metadata={"description": "Stored as custom.<type>", "example": "webinar_attended"})
    email = fields.String(validate=validate.Length(min=1, max=EMAIL_MAX),
                          metadata={"format": "email", "description": "The lead (created "
                                                                      "when new); or lead_id"})
    lead_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    occurred_at = fields.AwareDateTime(validate=_not_ahead, metadata={
        "description": "Default: now; at most an hour ahead"})
    url = fields.String(validate=validate.Length(max=URL_MAX))
    data = fields.Dict(keys=fields.String(validate=validate.Length(max=DATA_KEY_MAX)),
                       validate=validate.Length(max=DATA_KEYS_MAX))

    @ma.validates_schema
    def _one_lead(self, item: dict[str, Any], **_kw: Any) -> None:
        if ("email" in item) == ("lead_id" in item):
            raise ma.ValidationError("Give either email or lead_id.", "email")


_TYPE = re.compile(r"[a-z][a-z0-9_]{0,32}")
_FIELDS = frozenset(EventInSchema().fields)
_OCCURRED_AT = EventInSchema().fields["occurred_at"]


def _plain_text(value: Any, low: int, high: int) -> bool:
    return type(value) is str and low <= len(value) <= high and "\x00" not in value


def quick_item(item: Any) -> dict[str, Any] | None:
    """What EventInSchema loads from `item`, when `item` is plainly valid; else None (the
    schema decides)."""
    if type(item) is not dict or not _FIELDS.issuperset(item):
        return None
    if not (_plain_text(item.get("id"), 1, ID_MAX) and type(item.get("type")) is str
            and _TYPE.fullmatch(item["type"])):
        return None
    if "email" in item:
        if "lead_id" in item or not _plain_text(item["email"], 1, EMAIL_MAX):
            return None
    else:
        lead_id = item.get("lead_id")
        if type(lead_id) is not int or not 1 <= lead_id <= MAX_ID:
            return None
    out = dict(item)
    if "url" in item and not _plain_text(item["url"], 0, URL_MAX):
        return None
    if "data" in item:
        data = item["data"]
        if (type(data) is not dict or len(data) > DATA_KEYS_MAX or has_nul(data)
                or not all(type(k) is str and len(k) <= DATA_KEY_MAX for k in data)):
            return None
        out["data"] = dict(data)
    if "occurred_at" in item:
        if not _plain_text(item["occurred_at"], 1, 64):
            return None
        try:
            out["occurred_at"] = _OCCURRED_AT.deserialize(item["occurred_at"])
        except ma.ValidationError:
            return None
    return out


class EventList(fields.List):
    """A list of EventInSchema items: quick-checked, or loaded by the schema when any item is
    not plainly valid."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.Nested(EventInSchema), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if type(value) is list:
            quick = [quick_item(item) for item in value]
            if None not in quick:
                return quick
        return super()._deserialize(value, attr, data, **kwargs)


class EventBatchSchema(ma.Schema):
    # Not Strict's NUL scan of the whole body: `events` is its only field (others are
    # refused as unknown) and each item is checked for NUL by itself.
    class Meta:
        unknown = ma.RAISE

    events = EventList(required=True, validate=validate.Length(min=1, max=BATCH_MAX))


class EventResultSchema(ma.Schema):
    received = fields.Integer(required=True)
    created = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)

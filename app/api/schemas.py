"""Marshmallow schemas shared by the API's resources: they validate requests (unknown fields
refused), shape responses, and are the OpenAPI document's components."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from app.leads.models import Stage
from app.leads.query import GRADES, SORTS
from app.leads.service import PROFILE_FIELDS, PROFILE_LENGTHS

STAGES = [s.value for s in Stage]
# Ids are 32-bit integers on PostgreSQL (leads, enrollments, submissions, campaigns): a larger
# number is refused as input instead of reaching the database as an out-of-range error.
MAX_ID = 2**31 - 1
ID = validate.Range(min=1, max=MAX_ID)  # an id given in a body or a query
ATTRIBUTES_MAX = 50  # in one request
ATTRIBUTES_STORED_MAX = 200  # on one lead, however many requests added them
ATTRIBUTE_VALUE_MAX = 2000
LEAD_FIELDS = frozenset({"email", *PROFILE_FIELDS})


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


class Strict(ma.Schema):
    """Unknown fields refused; text with a NUL character refused (PostgreSQL stores none)."""

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def _refuse_nul(self, data: Any, **_kw: Any) -> Any:
        if isinstance(data, Mapping):
            bad = {str(k): ["Text may not contain NUL (\\u0000) characters."]
                   for k, v in data.items() if has_nul(k) or has_nul(v)}
            if bad:
                raise ma.ValidationError(bad)
        return data


class FieldErrorSchema(ma.Schema):
    field = fields.String(required=True, metadata={"description": "The field at fault"})
    pointer = fields.String(metadata={"description": "JSON Pointer into the body, or the "
                                                     "query parameter's name"})
    detail = fields.String(required=True)
    # `in` is a Python keyword: the attribute is `in_`, the JSON member `in`.
    in_ = fields.String(data_key="in", metadata={"description": "body, query or path"})


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True, metadata={"example": "urn:kindling:problem:not-found"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))


def _check_attributes(value: dict[str, Any]) -> None:
    if len(value) > ATTRIBUTES_MAX:
        raise ma.ValidationError(f"At most {ATTRIBUTES_MAX} attributes.")
    for key, item in value.items():
        if not 1 <= len(key) <= 100:
            raise ma.ValidationError("Attribute names are 1 to 100 characters.")
        if key in LEAD_FIELDS:  # would be merged into the field, past its own checks
            raise ma.ValidationError(f"{key} is a field of the lead: send it beside "
                                     "attributes, not in them.")
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise ma.ValidationError(f"{key}: an attribute is text, a number, true/false or "
                                     "null.")
        if isinstance(item, str) and len(item) > ATTRIBUTE_VALUE_MAX:
            raise ma.ValidationError(f"{key}: longer than {ATTRIBUTE_VALUE_MAX} characters.")


Attribute = fields.Raw(allow_none=True, metadata={
    "type": ["string", "number", "boolean"]})


def _profile(name: str, **kw: Any) -> fields.String:
    return fields.String(validate=validate.Length(max=PROFILE_LENGTHS[name]), **kw)


class LeadSchema(ma.Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True, metadata={"description": "The address as typed"})
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    company = fields.String(required=True)
    job_title = fields.String(required=True)
    phone = fields.String(required=True)
    country = fields.String(required=True)
    attributes = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                             required=True)
    stage = fields.String(required=True, validate=validate.OneOf(STAGES))
    fit_score = fields.Integer(required=True)
    engagement_score = fields.Float(required=True)
    owner = fields.String(allow_none=True, required=True,
                          metadata={"description": "The owner's email, or null"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    unsubscribed_at = fields.DateTime(allow_none=True, required=True)
    bounced_at = fields.DateTime(allow_none=True, required=True)


class LeadWriteSchema(Strict):
    first_name = _profile("first_name")
    last_name = _profile("last_name")
    company = _profile("company")
    job_title = _profile("job_title")
    phone = _profile("phone")
    country = fields.String(validate=validate.Regexp(r"^([A-Za-z]{2})?$",
                            error="A two-letter ISO 3166 country code."))
    attributes = fields.Dict(keys=fields.String(), values=Attribute,
                             validate=_check_attributes)


class LeadCreateSchema(LeadWriteSchema):
    # Checked (and normalised: trimmed, case folded) by the lead core's own rules.
    email = fields.String(required=True, validate=validate.Length(min=1, max=320),
                          metadata={"format": "email"})


class PageArgs(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200),
                           metadata={"description": "At most 200"})
    cursor = fields.String(validate=validate.Length(max=100),
                           metadata={"description": "`next_cursor` of the previous page"})


def page_schema(name: str, item: type[ma.Schema]) -> type[ma.Schema]:
    """`{data: [item], next_cursor}`: one page of a list."""
    return ma.Schema.from_dict({
        "data": fields.List(fields.Nested(item), required=True),
        "next_cursor": fields.String(allow_none=True, required=True,
                                     metadata={"description": "null on the last page"}),
    }, name=name)


def _query_text(length: int, description: str) -> fields.String:
    return fields.String(validate=validate.Length(max=length),
                         metadata={"description": description})


def _engagement(description: str) -> fields.Float:
    return fields.Float(allow_nan=False, validate=validate.Range(min=-1e6, max=1e6),
                        metadata={"description": description})


class LeadListArgs(PageArgs):
    """The leads list's filters and sorts (`app.leads.query.LeadQuery`), and two instants."""

    stage = fields.List(fields.String(validate=validate.OneOf(STAGES)),
                        metadata={"description": "One or more (repeat the parameter)"})
    grade = fields.List(fields.String(validate=validate.OneOf(GRADES)),
                        metadata={"description": "Fit grades A–F, one or more"})
    q = _query_text(200, "The start of the email, company, last or first name (case does "
                         "not matter)")
    owner = _query_text(320, "The owner's email; `none` for unowned")
    eng_min = _engagement("Engagement (as of now) at least this")
    eng_max = _engagement("Engagement (as of now) below this")
    campaign = fields.Integer(validate=validate.Range(min=1, max=MAX_ID),
                              metadata={"description": "Leads with an event of this campaign"})
    source = _query_text(20, "First-touch channel: hosted, embed, import, api …")
    utm_source = _query_text(100, "First-touch UTM source")
    created_from = fields.Date(metadata={"description": "Created on or after this day (UTC)"})
    created_to = fields.Date(metadata={"description": "Created on or before this day (UTC)"})
    active_from = fields.Date(metadata={"description": "Last activity on or after this day"})
    active_to = fields.Date(metadata={"description": "Last activity on or before this day"})
    suppressed = fields.String(validate=validate.OneOf(["yes", "no"]),
                               metadata={"description": "Unsubscribed or bounced (yes), or "
                                                        "neither (no)"})
    updated_since = fields.AwareDateTime(metadata={"description": "ISO 8601 with a zone"})
    created_since = fields.AwareDateTime()
    sort = fields.String(load_default="created", validate=validate.OneOf(list(SORTS)),
                         metadata={"description": "created (default), activity, fit, "
                                                  "engagement or name"})
    dir = fields.String(load_default="asc", validate=validate.OneOf(["asc", "desc"]),
                        metadata={"description": "asc (default: oldest first) or desc"})


LeadPageSchema = page_schema("LeadPage", LeadSchema)


class StageMoveSchema(Strict):
    stage = fields.String(required=True, validate=validate.OneOf(STAGES))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    amount = fields.Decimal(places=2, as_string=True, allow_none=True,
                            metadata={"description": "Deal amount (opportunity, customer)"})
    currency = fields.String(validate=validate.Length(equal=3), allow_none=True)
    external_id = fields.String(validate=validate.Length(max=200), allow_none=True,
                                metadata={"description": "The deal's id in your CRM. Send it: a deal "
                                                       "told again with it is recorded once, "
                                                       "and without it a second deal of the "
                                                       "same stage and amount is taken for "
                                                       "the first told again"})


class StageChangeSchema(ma.Schema):
    id = fields.Integer(required=True)
    from_stage = fields.String(allow_none=True, required=True)
    to_stage = fields.String(required=True)
    reason = fields.String(required=True)
    actor = fields.String(required=True)
    changed_at = fields.DateTime(required=True)

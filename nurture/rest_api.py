"""`/api/v1/enrollments`: put a lead in a sequence, take it out, list a lead's journeys."""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import abort
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy.exc import IntegrityError

from app.api.errors import field_problem
from app.api.framework import api_blueprint, current_token
from app.api.pagination import BadCursor, page
from app.api.schemas import MAX_ID, PageArgs, Strict, page_schema
from app.db import db
from app.leads.models import Lead
from nurture import engine
from nurture import enrollment as enrollments
from nurture.models import Enrollment, Sequence

log = logging.getLogger(__name__)
blp = api_blueprint("api_enrollments", __name__, "/enrollments",
                    "Enrollments: leads in nurture sequences.")
ID = validate.Range(min=1, max=MAX_ID)


class EnrollmentSchema(ma.Schema):
    id = fields.Integer(required=True)
    lead_id = fields.Integer(required=True)
    sequence_id = fields.Integer(required=True)
    sequence = fields.String(required=True, metadata={"description": "The sequence's name"})
    status = fields.String(required=True)
    source = fields.String(required=True)
    exit_reason = fields.String(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    ended_at = fields.DateTime(allow_none=True, required=True)


class EnrollArgs(Strict):
    lead_id = fields.Integer(required=True, validate=ID)
    sequence_id = fields.Integer(required=True, validate=ID)


class EnrollmentListArgs(PageArgs):
    lead_id = fields.Integer(validate=ID)
    sequence_id = fields.Integer(validate=ID)


def document(e: Enrollment) -> dict[str, Any]:
    return {"id": e.id, "lead_id": e.lead_id, "sequence_id": e.sequence_id,
            "sequence": e.sequence.name, "status": e.status, "source": e.source,
            "exit_reason": e.exit_reason, "created_at": e.created_at, "ended_at": e.ended_at}


def _kick(enrollment_id: int) -> None:
    try:
        engine.kick([enrollment_id])
    except Exception:  # noqa: BLE001  Redis away: the next tick runs the first step
        log.warning("could not kick enrollment %s now; the tick will", enrollment_id)


@blp.route("")
class Enrollments(MethodView):
    @blp.arguments(EnrollmentListArgs, location="query")
    @blp.response(200, page_schema("EnrollmentPage", EnrollmentSchema))
    def get(self, args: dict[str, Any]):
        """Enrollments, oldest first; filter by lead or sequence."""
        query = sa.select(Enrollment)
        if "lead_id" in args:
            query = query.where(Enrollment.lead_id == args["lead_id"])
        if "sequence_id" in args:
            query = query.where(Enrollment.sequence_id == args["sequence_id"])
        try:
            rows, next_cursor = page(query, Enrollment.id, args)
        except BadCursor as exc:
            return field_problem("cursor", str(exc))
        return {"data": [document(e) for e in rows], "next_cursor": next_cursor}

    @blp.arguments(EnrollArgs)
    @blp.response(201, EnrollmentSchema)
    def post(self, body: dict[str, Any]):
        """Enroll a lead in a sequence (refused, 422, when the sequence's rules say no)."""
        lead = db.session.get(Lead, body["lead_id"])
        sequence = db.session.get(Sequence, body["sequence_id"])
        if lead is None:
            return field_problem("lead_id", f"There is no lead {body['lead_id']}.")
        if sequence is None:
            return field_problem("sequence_id", f"There is no sequence {body['sequence_id']}.")
        why = enrollments.refusal(lead, sequence)
        if why:
            return field_problem("sequence_id", f"Not enrolled: {why}.")
        try:
            made = enrollments.enroll(lead.id, sequence.id,
                                      f"API ({current_token().name})"[:200])
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            made = None
        if made is None:
            return field_problem("sequence_id", "Not enrolled: the lead is already in this "
                                                "sequence.")
        _kick(made.id)
        return document(made)


@blp.route("/<int:enrollment_id>")
class EnrollmentItem(MethodView):
    @blp.response(200, EnrollmentSchema)
    def get(self, enrollment_id: int):
        """One enrollment."""
        return document(_enrollment(enrollment_id))

    @blp.response(200, EnrollmentSchema)
    def delete(self, enrollment_id: int):
        """Take the lead out of the sequence now (no further emails from it)."""
        enrollment = _enrollment(enrollment_id)
        enrollments.end(enrollment, f"removed through the API ({current_token().name})",
                        finished=False)
        db.session.commit()
        return document(enrollment)


def _enrollment(enrollment_id: int) -> Enrollment:
    row = db.session.get(Enrollment, enrollment_id) if 0 < enrollment_id <= MAX_ID else None
    if row is None:
        abort(404, description=f"There is no enrollment {enrollment_id}.")
    return row

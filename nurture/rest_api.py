"""`/api/v1/enrollments`: put a lead in a sequence, take it out, list a lead's journeys."""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask.views import MethodView
from marshmallow import fields
from sqlalchemy.exc import IntegrityError

from app.api.errors import field_problem
from app.api.framework import api_blueprint, current_token
from app.api.pagination import get_or_404, list_page
from app.api.schemas import ID, PageArgs, Strict, page_schema
from app.db import db
from app.leads.models import Lead
from nurture import engine
from nurture import enrollment as enrollments
from nurture.models import Enrollment, Sequence

log = logging.getLogger(__name__)
blp = api_blueprint("api_enrollments", __name__, "/enrollments",
                    "Enrollments: leads in nurture sequences.")


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
        return list_page(sa.select(Enrollment), Enrollment.id, args, document, filters={
            "lead_id": Enrollment.lead_id, "sequence_id": Enrollment.sequence_id})

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
        return document(get_or_404(Enrollment, enrollment_id, "enrollment"))

    @blp.response(200, EnrollmentSchema)
    def delete(self, enrollment_id: int):
        """Take the lead out of the sequence now (no further emails from it)."""
        enrollment = get_or_404(Enrollment, enrollment_id, "enrollment")
        enrollments.end(enrollment, f"removed through the API ({current_token().name})",
                        finished=False)
        db.session.commit()
        return document(enrollment)


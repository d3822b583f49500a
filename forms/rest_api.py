"""`/api/v1/submissions` (read): what people sent through forms, with consent and UTM."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask.views import MethodView
from marshmallow import fields, validate

from app.api.framework import api_blueprint
from app.api.pagination import get_or_404, list_page
from app.api.schemas import ID, PageArgs, page_schema
from forms.models import Submission

blp = api_blueprint("api_submissions", __name__, "/submissions",
                    "Form submissions (read only).")


class SubmissionSchema(ma.Schema):
    id = fields.Integer(required=True)
    form_id = fields.Integer(required=True)
    form = fields.String(required=True, metadata={"description": "The form's name"})
    lead_id = fields.Integer(allow_none=True, required=True)
    status = fields.String(required=True)
    email = fields.String(required=True)
    values = fields.Dict(required=True, metadata={"description": "The cleaned answers"})
    consent_given = fields.Boolean(required=True)
    consent_text = fields.String(required=True)
    utm = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    referrer = fields.String(required=True)
    landing_url = fields.String(required=True)
    channel = fields.String(required=True)
    campaign_id = fields.Integer(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)


class SubmissionListArgs(PageArgs):
    form_id = fields.Integer(validate=ID)
    lead_id = fields.Integer(validate=ID)
    status = fields.String(validate=validate.Length(max=24))


def document(s: Submission) -> dict[str, Any]:
    return {"id": s.id, "form_id": s.form_id, "form": s.form.name, "lead_id": s.lead_id,
            "status": s.status, "email": s.email, "values": dict(s.values or {}),
            "consent_given": s.consent_given, "consent_text": s.consent_text,
            "utm": {str(k): str(v) for k, v in (s.utm or {}).items()},
            "referrer": s.referrer, "landing_url": s.landing_url, "channel": s.channel,
            "campaign_id": s.campaign_id, "created_at": s.created_at}


@blp.route("")
class Submissions(MethodView):
    @blp.arguments(SubmissionListArgs, location="query")
    @blp.response(200, page_schema("SubmissionPage", SubmissionSchema))
    def get(self, args: dict[str, Any]):
        """Submissions, oldest first; filter by form, lead or status."""
        return list_page(sa.select(Submission), Submission.id, args, document, filters={
            "form_id": Submission.form_id, "lead_id": Submission.lead_id,
            "status": Submission.status})


@blp.route("/<int:submission_id>")
class SubmissionItem(MethodView):
    @blp.response(200, SubmissionSchema)
    def get(self, submission_id: int):
        """One submission."""
        return document(get_or_404(Submission, submission_id, "submission"))

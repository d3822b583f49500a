"""`/api/v1/leads`: list (filters, keyset cursor), get, create-or-upsert by email, update,
change stage with a reason."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort
from flask.views import MethodView
from sqlalchemy.exc import IntegrityError

from app.api import schemas
from app.api.documents import lead_document
from app.api.errors import field_problem
from app.api.framework import api_blueprint, current_token
from app.api.pagination import get_or_404
from app.auth.models import User
from app.db import db
from app.leads import query
from app.leads.lifecycle import ForbiddenMove, move
from app.leads.models import Lead
from app.leads.query import LeadQuery
from app.leads.service import PROFILE_FIELDS, InvalidEmail, record_event, upsert_lead
from app.outcomes.service import OUTCOME_STAGES, OutcomeError, record_outcome
from app.webhooks.listeners import lead_written

blp = api_blueprint("api_leads", __name__, "/leads", "Leads: the people Kindling knows.")


def _lead_query(args: dict[str, Any]) -> LeadQuery | None:
    """The LeadQuery of the validated query arguments; None when `owner` is an unknown
    address (nothing matches)."""
    owner = ""
    if "owner" in args:
        email = args["owner"].strip().lower()
        if email == "none":
            owner = "none"
        else:
            user_id = db.session.scalar(sa.select(User.id).where(User.email == email))
            if user_id is None:
                return None
            owner = str(user_id)
    return LeadQuery(
        q=args.get("q", "").strip(), stages=tuple(args.get("stage", ())),
        grades=tuple(args.get("grade", ())), eng_min=args.get("eng_min"),
        eng_max=args.get("eng_max"), campaign=args.get("campaign"), owner=owner,
        source=args.get("source", ""), utm_source=args.get("utm_source", ""),
        created_from=args.get("created_from"), created_to=args.get("created_to"),
        active_from=args.get("active_from"), active_to=args.get("active_to"),
        created_since=args.get("created_since"), updated_since=args.get("updated_since"),
        suppressed=args.get("suppressed", ""), sort=args["sort"], direction=args["dir"])


def _upsert(email: str, values: dict[str, Any]) -> Any:
    try:
        return upsert_lead(email, values, source="api")
    except IntegrityError:  # a parallel request made this lead just now: update that one
        db.session.rollback()
        return upsert_lead(email, values, source="api")


def _too_many_attributes(lead: Lead, added: int) -> Any:
    """The refusal when a request adds attributes past what a lead keeps (nothing of the
    request is stored), else None. Changing or removing one is always allowed."""
    if not added or len(lead.attributes or {}) <= schemas.ATTRIBUTES_STORED_MAX:
        return None
    db.session.rollback()
    return field_problem("attributes", f"A lead keeps at most {schemas.ATTRIBUTES_STORED_MAX} "
                                       "attributes: remove some (null) to add others.")


def lead_or_404(lead_id: int) -> Lead:
    return get_or_404(Lead, lead_id, "lead")


@blp.route("")
class Leads(MethodView):
    @blp.arguments(schemas.LeadListArgs, location="query")
    @blp.response(200, schemas.LeadPageSchema)
    def get(self, args: dict[str, Any]):
        """List leads with the leads list's filters, oldest first unless `sort` / `dir` say
        otherwise, a page at a time (`next_cursor` fetches the next)."""
        lq = _lead_query(args)
        if lq is None:  # an owner address nobody has
            return {"data": [], "next_cursor": None}
        if "cursor" in args and not query.cursor_is_valid(lq, args["cursor"]):
            return field_problem("cursor", "Not a cursor from this API for this sort: use "
                                           "next_cursor.")
        rows, next_cursor = query.page(lq, args.get("cursor"), args["limit"])
        return {"data": [lead_document(lead) for lead in rows], "next_cursor": next_cursor}

    @blp.arguments(schemas.LeadCreateSchema)
    @blp.response(200, schemas.LeadSchema, description="An existing lead, updated")
    @blp.alt_response(201, schema=schemas.LeadSchema, description="A new lead")
    def post(self, body: dict[str, Any]):
        """Create a lead, or update the one with this email (blank values never erase)."""
        values = dict(body.get("attributes") or {})
        values.update({k: v for k, v in body.items() if k in PROFILE_FIELDS})
        try:
            result = _upsert(body["email"], values)
        except InvalidEmail as exc:
            return field_problem("email", str(exc))
        lead = result.lead
        added = sum(1 for key, (old, _new) in result.changes.items()
                    if key not in PROFILE_FIELDS and old is None)
        refused = _too_many_attributes(lead, added)
        if refused is not None:
            return refused
        if result.changes:
            record_event(lead, "profile_updated", data={
                "via": "api", "token": current_token().name, "changes": result.changes})
        lead_written(lead, created=result.created, changes=result.changes)
        db.session.commit()
        return lead_document(lead), 201 if result.created else 200


@blp.route("/<int:lead_id>")
class LeadItem(MethodView):
    @blp.response(200, schemas.LeadSchema)
    def get(self, lead_id: int):
        """One lead."""
        return lead_document(lead_or_404(lead_id))

    @blp.arguments(schemas.LeadWriteSchema)
    @blp.response(200, schemas.LeadSchema)
    def patch(self, body: dict[str, Any], lead_id: int):
        """Set profile fields (an empty string clears one); attributes are merged, null
        removes one."""
        lead = lead_or_404(lead_id)
        if lead.erased:
            abort(410, description=f"Lead {lead_id} was erased on request: it takes no "
                                   "personal data again.")
        changes: dict[str, list[Any]] = {}
        for name in PROFILE_FIELDS:
            if name in body:
                value = body[name].strip().upper() if name == "country" else body[name].strip()
                if (getattr(lead, name) or "") != value:
                    changes[name] = [getattr(lead, name) or "", value]
                    setattr(lead, name, value)
        if body.get("attributes"):
            attributes = dict(lead.attributes or {})
            added = 0
            for key, value in body["attributes"].items():
                if value is None:
                    if key in attributes:
                        changes[key] = [attributes.pop(key), None]
                elif attributes.get(key) != value:
                    added += key not in attributes
                    changes[key] = [attributes.get(key), value]
                    attributes[key] = value
            lead.attributes = attributes
            refused = _too_many_attributes(lead, added)
            if refused is not None:
                return refused
        if changes:
            record_event(lead, "profile_updated", data={
                "via": "api", "token": current_token().name, "changes": changes})
            lead_written(lead, created=False, changes=changes)
        db.session.commit()
        return lead_document(lead)


@blp.route("/<int:lead_id>/stage")
class LeadStage(MethodView):
    @blp.arguments(schemas.StageMoveSchema)
    @blp.response(200, schemas.LeadSchema)
    def post(self, body: dict[str, Any], lead_id: int):
        """Move the lead to a stage, with a reason. Opportunity, customer and lost record the
        deal too (amount, currency, your CRM's id). A lead already at the stage is answered as
        it is, with no second move in its history: a move sent again (after a timeout, say)
        answers as the first did."""
        lead = lead_or_404(lead_id)
        user = current_token().user
        try:
            if body["stage"] in OUTCOME_STAGES:
                record_outcome(lead, body["stage"], body.get("amount"), body.get("currency"),
                               body.get("external_id"), actor="api", actor_user_id=user.id,
                               reason=body["reason"])
            else:
                for name in ("amount", "currency", "external_id"):
                    if body.get(name) is not None:
                        return field_problem(name, "Only an opportunity, customer or lost "
                                                   "outcome carries a deal.")
                if lead.stage == body["stage"]:
                    return lead_document(lead)
                move(lead, body["stage"], reason=body["reason"], actor="api",
                     actor_user_id=user.id, by=user)  # the token's user: the move guards ask
        except OutcomeError as exc:
            db.session.rollback()
            return field_problem(exc.field or "stage", exc.message)
        except ForbiddenMove as exc:
            db.session.rollback()
            return field_problem("stage" if body["reason"].strip() else "reason", str(exc))
        db.session.commit()
        return lead_document(lead)

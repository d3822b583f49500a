"""`GET /api/v1/reports/numbers` (read): the reports' daily numbers summed over a range."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate

from app.api.errors import field_problem
from app.api.framework import api_blueprint
from app.api.schemas import MAX_ID, Strict
from app.db import utcnow

blp = api_blueprint("api_reports", __name__, "/reports", "Report numbers (read only).")
MAX_DAYS = 366


class NumbersArgs(Strict):
    since = fields.Date(metadata={"description": "First day (UTC), default 30 days ago"})
    until = fields.Date(metadata={"description": "Last day (UTC), default today"})
    campaign_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


class NumbersSchema(ma.Schema):
    since = fields.Date(required=True)
    until = fields.Date(required=True)
    campaign_id = fields.Integer(allow_none=True, required=True)
    metrics = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                          metadata={"description": "leads, mql, sql, customer, page_views, "
                                                   "submissions, emails … → count"})


@blp.route("/numbers")
class Numbers(MethodView):
    @blp.arguments(NumbersArgs, location="query")
    @blp.response(200, NumbersSchema)
    def get(self, args: dict[str, Any]):
        """Every report metric summed over the days since..until (inclusive, ≤ 366 days)."""
        from app.reports.query import totals
        from app.reports.registry import rollups

        today = utcnow().date()
        until: date = args.get("until") or today
        try:
            since: date = args.get("since") or until - timedelta(days=29)
        except OverflowError:
            return field_problem("until", "That day is too early.")
        if since > until:
            return field_problem("since", "since is after until.")
        if (until - since).days >= MAX_DAYS:
            return field_problem("since", f"At most {MAX_DAYS} days at a time.")
        metrics = sorted({m for rollup in rollups() for m in rollup.metrics})
        found = totals(metrics, since, until, campaign_id=args.get("campaign_id"))
        return {"since": since, "until": until, "campaign_id": args.get("campaign_id"),
                "metrics": found}

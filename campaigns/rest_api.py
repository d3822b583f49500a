"""`/api/v1/campaigns` (read): campaigns with their UTM defaults, cost and landing pages."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app
from flask.views import MethodView
from marshmallow import fields, validate

from app.api.framework import api_blueprint
from app.api.pagination import get_or_404, list_page
from app.api.schemas import PageArgs, page_schema
from campaigns.models import Campaign

blp = api_blueprint("api_campaigns", __name__, "/campaigns", "Campaigns (read only).")


class PageLinkSchema(ma.Schema):
    slug = fields.String(required=True)
    url = fields.String(required=True)


class CampaignSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    slug = fields.String(required=True)
    status = fields.String(required=True)
    channel = fields.String(required=True)
    utm_source = fields.String(required=True)
    utm_medium = fields.String(required=True)
    utm_campaign = fields.String(required=True)
    cost = fields.String(required=True, metadata={"description": "Decimal, as text"})
    currency = fields.String(required=True)
    starts_on = fields.Date(allow_none=True, required=True)
    ends_on = fields.Date(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    pages = fields.List(fields.Nested(PageLinkSchema), required=True)


class CampaignListArgs(PageArgs):
    status = fields.String(validate=validate.Length(max=12))


def document(c: Campaign) -> dict[str, Any]:
    base = current_app.config["BASE_URL"]
    return {"id": c.id, "name": c.name, "slug": c.slug, "status": c.status,
            "channel": c.channel, "utm_source": c.utm_source, "utm_medium": c.utm_medium,
            "utm_campaign": c.utm_campaign, "cost": str(c.cost or 0), "currency": c.currency,
            "starts_on": c.starts_on, "ends_on": c.ends_on, "created_at": c.created_at,
            "pages": [{"slug": p.slug, "url": f"{base}/p/{p.slug}"} for p in c.pages]}


@blp.route("")
class Campaigns(MethodView):
    @blp.arguments(CampaignListArgs, location="query")
    @blp.response(200, page_schema("CampaignPage", CampaignSchema))
    def get(self, args: dict[str, Any]):
        """Campaigns, oldest first; filter by status."""
        return list_page(sa.select(Campaign), Campaign.id, args, document,
                         filters={"status": Campaign.status})


@blp.route("/<int:campaign_id>")
class CampaignItem(MethodView):
    @blp.response(200, CampaignSchema)
    def get(self, campaign_id: int):
        """One campaign."""
        return document(get_or_404(Campaign, campaign_id, "campaign"))

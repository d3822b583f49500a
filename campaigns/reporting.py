"""What the reports need to know about campaigns: names, cost and dates, and which campaign an
embedded-form submission is credited to.

An embedded form sits on another site, so its submission carries no landing page. It is credited
to the campaign whose `utm_campaign` the visitor brought (links from a campaign carry it), else
to the campaign whose landing page uses the same form, when exactly one does. A hosted
submission keeps its landing page's campaign.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from app.db import db
from app.reports.registry import CampaignInfo
from campaigns.models import Campaign, LandingPage


def campaign_infos() -> list[CampaignInfo]:
    rows = db.session.execute(sa.select(Campaign.id, Campaign.name, Campaign.cost,
                                        Campaign.currency, Campaign.starts_on, Campaign.ends_on)
                              .order_by(Campaign.name, Campaign.id)).all()
    return [CampaignInfo(*row) for row in rows]


def credit_factory() -> Callable[[int | None, Any, str], int | None]:
    by_utm: dict[str, int] = {}
    for campaign_id, utm in db.session.execute(
            sa.select(Campaign.id, Campaign.utm_campaign).where(Campaign.utm_campaign != "")
            .order_by(Campaign.created_at, Campaign.id)):
        by_utm[utm.strip().lower()] = campaign_id  # the newest campaign wins a shared tag
    by_form: dict[int, set[int]] = {}
    for form_id, campaign_id in db.session.execute(
            sa.select(LandingPage.form_id, LandingPage.campaign_id)
            .where(LandingPage.form_id.is_not(None))):
        by_form.setdefault(int(form_id or 0), set()).add(campaign_id)
    only = {form_id: next(iter(ids)) for form_id, ids in by_form.items() if len(ids) == 1}

    def credit(campaign_id: int | None, form_id: Any, utm_campaign: str) -> int | None:
        if campaign_id:
            return campaign_id
        if utm_campaign and utm_campaign in by_utm:
            return by_utm[utm_campaign]
        try:
            return only.get(int(form_id)) if form_id is not None else None
        except (TypeError, ValueError):
            return None

    return credit

"""Campaign numbers: leads (distinct people who submitted through it) and cost per lead."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from app.db import db
from campaigns.models import DELIVERABLE_STATUSES, Campaign
from forms.models import Submission


@dataclass
class CampaignRow:
    campaign: Campaign
    leads: int

    @property
    def cost_per_lead(self) -> Decimal | None:
        """cost / leads, to the cent; None when there is no lead yet."""
        if not self.leads:
            return None
        return (Decimal(self.campaign.cost or 0) / self.leads).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP)


def campaign_rows() -> list[CampaignRow]:
    """Every campaign with its count of distinct leads from accepted or released submissions
    (quarantined suspects and unconfirmed double opt-ins are not leads yet)."""
    leads = (
        sa.select(Submission.campaign_id, sa.func.count(sa.distinct(Submission.lead_id)).label("n"))
        .where(Submission.campaign_id.is_not(None), Submission.lead_id.is_not(None),
               Submission.status.in_(DELIVERABLE_STATUSES))
        .group_by(Submission.campaign_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(Campaign, sa.func.coalesce(leads.c.n, 0))
        .outerjoin(leads, leads.c.campaign_id == Campaign.id)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
    ).all()
    return [CampaignRow(campaign, int(count)) for campaign, count in rows]

"""The demo: default rules as version 1, scored leads, one MQL made by scoring."""

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead, StageChange
from app.seed import run_seeders
from nurture.scoring.models import LeadScore, RuleSet


def test_demo_seed_scores_leads_and_makes_one_mql(app):
    run_seeders(app)
    run_seeders(app)  # idempotent
    assert db.session.scalar(sa.select(sa.func.count(RuleSet.id))) == 1
    (change,) = db.session.scalars(sa.select(StageChange).where(
        StageChange.to_stage == "mql", StageChange.actor == "scoring")).all()
    assert "visits to /pricing" in change.reason and "≥ 50" in change.reason
    lead = db.session.get(Lead, change.lead_id)
    assert lead.stage == "mql" and lead.engagement_score >= 50
    leads = db.session.scalar(sa.select(sa.func.count(Lead.id)))
    assert db.session.scalar(sa.select(sa.func.count(LeadScore.lead_id))) == leads

"""lead_campaigns: which leads have had activity in which campaign, kept by triggers (issue 11)

Revision ID: 0026b_lead_campaigns
Revises: 0026a_event_dedupe_bigint
Create Date: 2026-12-02 10:40:00

The leads list's campaign filter asked each lead, newest first, whether it had an event of the
campaign: at 1,000,000 leads and 10,000,000 events a campaign's first page probed 11,161 leads
and its capped count walked 200,000 (245 ms and 280 ms for the first and a deep page). One row
per (lead, campaign) with the lead's created_at, indexed (campaign_id, created_at, lead_id),
answers both from the index. Triggers on events and leads keep it (`app.leads.campaign_members`);
it is filled here from the events already stored.
"""
import sqlalchemy as sa
from alembic import op

import app.db
from app.leads import campaign_members

revision = '0026b_lead_campaigns'
down_revision = '0026a_event_dedupe_bigint'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'lead_campaigns',
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'],
                                name=op.f('fk_lead_campaigns_lead_id_leads'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('lead_id', 'campaign_id', name=op.f('pk_lead_campaigns')),
    )
    bind = op.get_bind()
    campaign_members.install(bind)  # before the fill: no event slips between the two
    bind.execute(sa.text(campaign_members.BACKFILL))
    op.create_index('ix_lead_campaigns_campaign_created', 'lead_campaigns',
                    ['campaign_id', 'created_at', 'lead_id'], unique=False)
    if bind.dialect.name == 'postgresql':
        # Statistics now, so the planner walks the new index (autovacuum, which also sets the
        # visibility map for index-only counts, comes by after a million inserts by itself).
        op.execute('ANALYZE lead_campaigns')


def downgrade():
    campaign_members.remove(op.get_bind())
    op.drop_index('ix_lead_campaigns_campaign_created', table_name='lead_campaigns')
    op.drop_table('lead_campaigns')

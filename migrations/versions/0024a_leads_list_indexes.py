"""leads list at 1,000,000 leads (issue 11): indexes that serve a filter's keyset page in the
default order (newest first) and its capped count without scanning the table

Revision ID: 0024a_leads_list_indexes
Revises: 0023a_small_events
Create Date: 2026-12-02 07:15:00

- leads (owner_id, created_at, id) in place of (owner_id): an owner's leads newest first, and
  still the index of the owner_id foreign key.
- leads (created_at, id) WHERE unsubscribed_at IS NOT NULL OR bounced_at IS NOT NULL: the
  suppressed leads (a few percent) newest first, without walking everyone else.
- events (campaign_id, lead_id) WHERE campaign_id IS NOT NULL in place of (campaign_id): "has an
  event of this campaign" answered from the index alone, one probe per lead.
- report_leads (channel, lead_id) and (utm_source, lead_id): the first-touch source and UTM
  source filters (utm_source is stored lower-case, so the filter compares it as it is).
"""
import sqlalchemy as sa
from alembic import op

revision = '0024a_leads_list_indexes'
down_revision = '0023a_small_events'
branch_labels = None
depends_on = None

SUPPRESSED = "unsubscribed_at IS NOT NULL OR bounced_at IS NOT NULL"
CAMPAIGN = "campaign_id IS NOT NULL"


def upgrade():
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_owner_id')
        batch_op.create_index('ix_leads_owner_created', ['owner_id', 'created_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_leads_suppressed_created', ['created_at', 'id'], unique=False,
                              postgresql_where=sa.text(SUPPRESSED),
                              sqlite_where=sa.text(SUPPRESSED))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_campaign_id')
        batch_op.create_index('ix_events_campaign_lead', ['campaign_id', 'lead_id'],
                              unique=False, postgresql_where=sa.text(CAMPAIGN),
                              sqlite_where=sa.text(CAMPAIGN))
    op.create_index('ix_report_leads_channel', 'report_leads', ['channel', 'lead_id'],
                    unique=False)
    op.create_index('ix_report_leads_utm_source', 'report_leads',
                    ['utm_source', 'lead_id'], unique=False)


def downgrade():
    op.drop_index('ix_report_leads_utm_source', table_name='report_leads')
    op.drop_index('ix_report_leads_channel', table_name='report_leads')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_campaign_lead')
        batch_op.create_index('ix_events_campaign_id', ['campaign_id'], unique=False,
                              postgresql_where=sa.text(CAMPAIGN),
                              sqlite_where=sa.text(CAMPAIGN))
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_suppressed_created')
        batch_op.drop_index('ix_leads_owner_created')
        batch_op.create_index('ix_leads_owner_id', ['owner_id'], unique=False)

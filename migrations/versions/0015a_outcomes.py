"""outcomes: deals and closes (opportunity, customer, lost) and the CRM webhook's accepted message ids

Revision ID: 0015a_outcomes
Revises: 0008_campaign_timezone
Create Date: 2026-12-02 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401  used by rendered JSONB columns
from sqlalchemy.dialects import postgresql  # noqa: F401

import app.db

# revision identifiers, used by Alembic.
revision = '0015a_outcomes'
down_revision = '0008_campaign_timezone'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('lead_outcomes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('actor', sa.String(length=40), nullable=False),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('stage_change_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('recorded_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_lead_outcomes_actor_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_outcomes_lead_id_leads'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['stage_change_id'], ['stage_changes.id'], name=op.f('fk_lead_outcomes_stage_change_id_stage_changes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_outcomes'))
    )

    with op.batch_alter_table('lead_outcomes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_outcomes_external_id'), ['external_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_outcomes_lead_id'), ['lead_id'], unique=False)

    op.create_table('crm_webhook_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.String(length=200), nullable=False),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['outcome_id'], ['lead_outcomes.id'], name=op.f('fk_crm_webhook_messages_outcome_id_lead_outcomes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_webhook_messages')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_crm_webhook_messages_webhook_id'))
    )


def downgrade():
    op.drop_table('crm_webhook_messages')
    with op.batch_alter_table('lead_outcomes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_outcomes_lead_id'))
        batch_op.drop_index(batch_op.f('ix_lead_outcomes_external_id'))
    op.drop_table('lead_outcomes')


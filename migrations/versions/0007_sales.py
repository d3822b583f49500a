"""sales: settings, rotation, territories, assignments, alerts, CRM webhook deliveries

Revision ID: 0007_sales
Revises: 0006_tracking
Create Date: 2026-11-24 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import app.db

# revision identifiers, used by Alembic.
revision = '0007_sales'
down_revision = '0006_tracking'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sales_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_mode', sa.String(length=20), nullable=False),
    sa.Column('team_email', sa.String(length=320), nullable=False),
    sa.Column('manager_email', sa.String(length=320), nullable=False),
    sa.Column('sla_hours', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('work_start_hour', sa.Integer(), nullable=False),
    sa.Column('work_end_hour', sa.Integer(), nullable=False),
    sa.Column('allow_non_owner', sa.Boolean(), nullable=False),
    sa.Column('crm_webhook_url', sa.String(length=500), nullable=False),
    sa.Column('crm_webhook_secret', sa.String(length=200), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_settings'))
    )
    op.create_table('sales_reps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('working_days', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('is_manager', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sales_reps_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_reps')),
    sa.UniqueConstraint('user_id', name=op.f('uq_sales_reps_user_id'))
    )
    op.create_table('sales_territories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sales_territories_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_territories')),
    sa.UniqueConstraint('country', name=op.f('uq_sales_territories_country'))
    )
    op.create_table('sales_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('stage_change_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('decided_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_sales_assignments_decided_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_sales_assignments_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_change_id'], ['stage_changes.id'], name=op.f('fk_sales_assignments_stage_change_id_stage_changes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sales_assignments_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_assignments')),
    sa.UniqueConstraint('stage_change_id', name=op.f('uq_sales_assignments_stage_change_id'))
    )
    with op.batch_alter_table('sales_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_assignments_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_assignments_outcome'), ['outcome'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_assignments_user_id'), ['user_id'], unique=False)

    op.create_table('sales_webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_change_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stage_change_id'], ['stage_changes.id'], name=op.f('fk_sales_webhook_deliveries_stage_change_id_stage_changes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_webhook_deliveries')),
    sa.UniqueConstraint('stage_change_id', 'attempt', name=op.f('uq_sales_webhook_deliveries_stage_change_id_attempt'))
    )
    with op.batch_alter_table('sales_webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_webhook_deliveries_stage_change_id'), ['stage_change_id'], unique=False)

    op.create_table('sales_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['sales_assignments.id'], name=op.f('fk_sales_alerts_assignment_id_sales_assignments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_sales_alerts_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sales_alerts_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sales_alerts')),
    sa.UniqueConstraint('key', name=op.f('uq_sales_alerts_key'))
    )
    with op.batch_alter_table('sales_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_alerts_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_alerts_lead_id'), ['lead_id'], unique=False)


def downgrade():
    with op.batch_alter_table('sales_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_alerts_lead_id'))
        batch_op.drop_index(batch_op.f('ix_sales_alerts_assignment_id'))

    op.drop_table('sales_alerts')
    with op.batch_alter_table('sales_webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_webhook_deliveries_stage_change_id'))

    op.drop_table('sales_webhook_deliveries')
    with op.batch_alter_table('sales_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_assignments_user_id'))
        batch_op.drop_index(batch_op.f('ix_sales_assignments_outcome'))
        batch_op.drop_index(batch_op.f('ix_sales_assignments_lead_id'))

    op.drop_table('sales_assignments')
    op.drop_table('sales_territories')
    op.drop_table('sales_reps')
    op.drop_table('sales_settings')

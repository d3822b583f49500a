"""reports: per-lead facts, daily rollups, refresh state; events by type and time

Revision ID: 0015b_reports
Revises: 0015a_outcomes
Create Date: 2026-12-02 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import app.db

# revision identifiers, used by Alembic.
revision = '0015b_reports'
down_revision = '0015a_outcomes'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('report_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('metric', sa.String(length=40), nullable=False),
    sa.Column('campaign_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('utm_source', sa.String(length=100), nullable=False),
    sa.Column('detail', sa.String(length=40), nullable=False),
    sa.Column('value', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('day', 'metric', 'campaign_id', 'channel', 'utm_source', 'detail', name=op.f('pk_report_daily'))
    )

    op.create_table('report_leads',
    sa.Column('lead_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('utm_source', sa.String(length=100), nullable=False),
    sa.Column('mql_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sql_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('opportunity_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('customer_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lost_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('lead_id', name=op.f('pk_report_leads'))
    )

    with op.batch_alter_table('report_leads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_leads_created_day'), ['created_day'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_leads_customer_at'), ['customer_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_leads_lost_at'), ['lost_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_leads_mql_at'), ['mql_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_leads_opportunity_at'), ['opportunity_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_leads_sql_at'), ['sql_at'], unique=False)

    op.create_table('report_state',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_report_state'))
    )

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_type_time', ['type', 'occurred_at'], unique=False)

    # ### end Alembic commands ###


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type_time')
    op.drop_table('report_state')
    op.drop_table('report_leads')
    op.drop_table('report_daily')


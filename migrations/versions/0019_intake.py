"""forms: the intake table (one row per submit, turned into leads in batches by the intake
processor) and the submission's intake id

Revision ID: 0019_intake
Revises: 0022b_lean_event_indexes
Create Date: 2026-12-02 03:40:00

"""
import sqlalchemy as sa
from alembic import op

import app.db

revision = '0019_intake'
down_revision = '0022b_lean_event_indexes'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('intake',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('form_version', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('data', app.db.JSONType, nullable=False),
    sa.Column('raw', app.db.JSONType, nullable=False),
    sa.Column('consent_text', sa.Text(), nullable=False),
    sa.Column('consent_version', sa.String(length=40), nullable=False),
    sa.Column('utm_defaults', app.db.JSONType, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('landing_page_id', sa.Integer(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('user_agent', sa.String(length=500), nullable=False),
    sa.Column('visitor_id', sa.String(length=64), nullable=True),
    sa.Column('suspect_reason', sa.String(length=200), nullable=True),
    sa.Column('dedupe_key', sa.String(length=100), nullable=False),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.Column('processed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intake')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_intake_dedupe_key'))
    )
    op.create_index('ix_intake_status_received', 'intake', ['status', 'received_at'])
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.add_column(sa.Column('intake_id', sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(op.f('uq_submissions_intake_id'), ['intake_id'])


def downgrade():
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.drop_constraint(op.f('uq_submissions_intake_id'), type_='unique')
        batch_op.drop_column('intake_id')
    op.drop_index('ix_intake_status_received', table_name='intake')
    op.drop_table('intake')

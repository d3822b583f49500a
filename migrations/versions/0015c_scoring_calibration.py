"""scoring: the score at each handoff to sales, and what-if replays

Revision ID: 0015c_scoring_calibration
Revises: 0015b_reports
Create Date: 2026-12-02 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import app.db

# revision identifiers, used by Alembic.
revision = '0015c_scoring_calibration'
down_revision = '0015b_reports'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scoring_whatif_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('finished_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_scoring_whatif_runs_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scoring_whatif_runs'))
    )

    op.create_table('scoring_mql_snapshots',
    sa.Column('stage_change_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('ruleset_version', sa.Integer(), nullable=False),
    sa.Column('fit_points', sa.Integer(), nullable=False),
    sa.Column('fit_grade', sa.String(length=1), nullable=False),
    sa.Column('engagement', sa.Float(), nullable=False),
    sa.Column('mql_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('computed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stage_change_id'], ['stage_changes.id'], name=op.f('fk_scoring_mql_snapshots_stage_change_id_stage_changes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stage_change_id', name=op.f('pk_scoring_mql_snapshots'))
    )

    with op.batch_alter_table('scoring_mql_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scoring_mql_snapshots_lead_id'), ['lead_id'], unique=False)


def downgrade():
    op.drop_table('scoring_mql_snapshots')
    op.drop_table('scoring_whatif_runs')


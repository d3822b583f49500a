"""scoring: versioned rule sets, each lead's latest score

Revision ID: 0005_scoring
Revises: 0004_nurture
Create Date: 2026-11-24 11:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import app.db

# revision identifiers, used by Alembic.
revision = '0005_scoring'
down_revision = '0004_nurture'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scoring_rule_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_scoring_rule_sets_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scoring_rule_sets')),
    sa.UniqueConstraint('version', name=op.f('uq_scoring_rule_sets_version'))
    )
    # Exactly one active version: a unique index over the active rows only.
    op.create_index('uq_scoring_rule_sets_active', 'scoring_rule_sets', ['active'], unique=True,
                    sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))
    op.create_table('lead_scores',
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('ruleset_version', sa.Integer(), nullable=False),
    sa.Column('fit_points', sa.Integer(), nullable=False),
    sa.Column('fit_grade', sa.String(length=1), nullable=False),
    sa.Column('engagement', sa.Float(), nullable=False),
    sa.Column('computed_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_scores_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('lead_id', name=op.f('pk_lead_scores'))
    )
    op.create_index(op.f('ix_lead_scores_fit_grade'), 'lead_scores', ['fit_grade'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_lead_scores_fit_grade'), table_name='lead_scores')
    op.drop_table('lead_scores')
    op.drop_index('uq_scoring_rule_sets_active', table_name='scoring_rule_sets')
    op.drop_table('scoring_rule_sets')

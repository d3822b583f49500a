"""tracking: links of each send, known visitors, sending pauses

Revision ID: 0006_tracking
Revises: 0005_scoring
Create Date: 2026-11-24 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import app.db

# revision identifiers, used by Alembic.
revision = '0006_tracking'
down_revision = '0005_scoring'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('nurture_send_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['send_id'], ['nurture_sends.id'], name=op.f('fk_nurture_send_links_send_id_nurture_sends'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nurture_send_links')),
    sa.UniqueConstraint('send_id', 'index', name=op.f('uq_nurture_send_links_send_id_index'))
    )
    op.create_table('tracking_visitors',
    sa.Column('visitor_id', sa.String(length=64), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_tracking_visitors_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('visitor_id', name=op.f('pk_tracking_visitors'))
    )
    with op.batch_alter_table('tracking_visitors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracking_visitors_lead_id'), ['lead_id'], unique=False)

    op.create_table('tracking_sending_pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('spam_rate', sa.Float(), nullable=False),
    sa.Column('sequence_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lifted_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lifted_by', sa.String(length=320), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tracking_sending_pauses'))
    )


def downgrade():
    op.drop_table('tracking_sending_pauses')
    with op.batch_alter_table('tracking_visitors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracking_visitors_lead_id'))

    op.drop_table('tracking_visitors')
    op.drop_table('nurture_send_links')

"""mail: the ledger of every email sent outside a nurture sequence (asset links, confirmations,
sales alerts, test sends, notices): a row claimed before the provider is called

Revision ID: 0009_mail_ledger
Revises: 0015c_scoring_calibration
Create Date: 2026-12-01 23:18:29.676225

"""
import sqlalchemy as sa
from alembic import op

import app.db

# revision identifiers, used by Alembic.
revision = '0009_mail_ledger'
down_revision = '0015c_scoring_calibration'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('mail_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('not_before', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_mail_deliveries_lead_id_leads'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_deliveries')),
    sa.UniqueConstraint('key', name=op.f('uq_mail_deliveries_key'))
    )
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_deliveries_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index('ix_mail_deliveries_status_updated', ['status', 'updated_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('mail_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_mail_deliveries_status_updated')
        batch_op.drop_index(batch_op.f('ix_mail_deliveries_lead_id'))

    op.drop_table('mail_deliveries')

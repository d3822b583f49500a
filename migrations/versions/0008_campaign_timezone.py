"""campaigns: a default send-window time zone for leads who gave neither a zone nor a country

Revision ID: 0008_campaign_timezone
Revises: 0007_sales
Create Date: 2026-12-01 17:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008_campaign_timezone'
down_revision = '0007_sales'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=False,
                                      server_default=''))


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('timezone')

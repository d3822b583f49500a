"""sales: Slack-compatible alert channels (the team's and each rep's incoming-webhook URL)

Revision ID: 0021c_slack_alerts
Revises: 0022a_consent
Create Date: 2026-12-02 04:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

import app.db

# revision identifiers, used by Alembic.
revision = '0021c_slack_alerts'
down_revision = '0022a_consent'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sales_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_slack_url', sa.String(length=500), nullable=False,
                                      server_default=''))
    with op.batch_alter_table('sales_reps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slack_url', sa.String(length=500), nullable=False,
                                      server_default=''))
    with op.batch_alter_table('sales_alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slack_posted_at', app.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('slack_error', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('sales_alerts', schema=None) as batch_op:
        batch_op.drop_column('slack_error')
        batch_op.drop_column('slack_posted_at')
    with op.batch_alter_table('sales_reps', schema=None) as batch_op:
        batch_op.drop_column('slack_url')
    with op.batch_alter_table('sales_settings', schema=None) as batch_op:
        batch_op.drop_column('team_slack_url')

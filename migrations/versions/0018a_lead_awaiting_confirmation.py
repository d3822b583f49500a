"""leads: awaiting_confirmation, set on a lead known only from an unconfirmed double opt-in
form (not scored to MQL, alerted or exported as qualified until they confirm)

Revision ID: 0018a_lead_awaiting_confirmation
Revises: 0021b_webhooks
Create Date: 2026-12-02 03:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018a_lead_awaiting_confirmation'
down_revision = '0021b_webhooks'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('awaiting_confirmation', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
    # Leads whose every submission is a double opt-in still waiting (or expired) await it.
    op.execute(
        "UPDATE leads SET awaiting_confirmation = TRUE WHERE stage = 'lead' AND id IN ("
        "SELECT lead_id FROM submissions WHERE lead_id IS NOT NULL "
        "GROUP BY lead_id HAVING SUM(CASE WHEN status IN ('pending_confirmation', 'expired') "
        "THEN 0 ELSE 1 END) = 0)")


def downgrade():
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('awaiting_confirmation')

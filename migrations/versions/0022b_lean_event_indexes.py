"""events: lean indexes (no index on type alone, partial indexes on visitor_id and campaign_id)

Revision ID: 0022b_lean_event_indexes
Revises: 0020c_lead_imports
Create Date: 2026-12-02 04:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0022b_lean_event_indexes'
down_revision = '0020c_lead_imports'
branch_labels = None
depends_on = None

NOT_NULL = {name: f"{name} IS NOT NULL" for name in ("visitor_id", "campaign_id")}


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        # ix_events_type_time (type, occurred_at) serves every query on type alone.
        batch_op.drop_index('ix_events_type')
        for name, where in NOT_NULL.items():
            batch_op.drop_index(f'ix_events_{name}')
            batch_op.create_index(f'ix_events_{name}', [name], unique=False,
                                  postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        for name in NOT_NULL:
            batch_op.drop_index(f'ix_events_{name}')
            batch_op.create_index(f'ix_events_{name}', [name], unique=False)
        batch_op.create_index('ix_events_type', ['type'], unique=False)

"""auth: a session version per user, part of every session and remember-me cookie, so that
sign-out, a password change and deactivation revoke them

Revision ID: 0016a_session_version
Revises: 0020a_lead_notes_tasks
Create Date: 2026-12-02 03:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016a_session_version'
down_revision = '0020a_lead_notes_tasks'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='1',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')

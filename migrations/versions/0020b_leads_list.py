"""leads list: last activity, engagement as of now, keyset indexes, saved views, bulk jobs

Revision ID: 0020b_leads_list
Revises: 0021c_slack_alerts
Create Date: 2026-12-02 03:06:27.340094

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import app.db

# revision identifiers, used by Alembic.
revision = '0020b_leads_list'
down_revision = '0021c_slack_alerts'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('lead_bulk_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('query', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('lead_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('last_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=True),
    sa.Column('finished_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_lead_bulk_jobs_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_bulk_jobs'))
    )
    op.create_table('lead_saved_views',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_lead_saved_views_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_saved_views')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_lead_saved_views_user_id_name'))
    )
    with op.batch_alter_table('lead_saved_views', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_saved_views_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('engagement_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('engagement_key', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('last_activity_at', app.db.UTCDateTime(timezone=True), nullable=True))
    _backfill()
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.alter_column('engagement_key', existing_type=sa.Float(), nullable=False)
        batch_op.alter_column('last_activity_at', existing_type=app.db.UTCDateTime(timezone=True),
                              nullable=False)
        batch_op.create_index('ix_leads_activity', ['last_activity_at', 'id'], unique=False)
        batch_op.create_index('ix_leads_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_leads_engagement', ['engagement_key', 'id'], unique=False)
        batch_op.create_index('ix_leads_fit', ['fit_score', 'id'], unique=False)
        batch_op.create_index('ix_leads_name', ['last_name', 'first_name', 'id'], unique=False)



NOT_ACTIVITY = (
    "owner_assigned", "profile_edited", "handoff_decided", "handoff_refused", "engagement_reset",
    "nurture_enrolled", "nurture_finished", "nurture_exited", "email_sent", "email_delivered",
    "email_dropped", "email_blocked", "bounced", "asset_email_sent", "asset_email_failed",
    "sales_alert_sent", "sales_alert_undelivered", "outcome_recorded", "subscription_changed",
    "subscription_expired", "lead_imported")


def _half_life(bind) -> float:
    import json

    try:
        raw = bind.execute(sa.text(
            "SELECT definition FROM scoring_rule_sets WHERE active = :yes"), {"yes": True}).scalar()
    except sa.exc.DBAPIError:
        return 30.0
    if raw is None:
        return 30.0
    data = json.loads(raw) if isinstance(raw, str) else raw
    return float(data.get("half_life_days") or 30.0)


def _backfill():
    """Last activity: the newest human event of the lead's own (else its creation).
    Engagement: as stored, computed when the lead was last updated; its key from that."""
    import math
    from datetime import UTC, datetime

    bind = op.get_bind()
    kinds = ", ".join(f"'{k}'" for k in NOT_ACTIVITY)
    bind.execute(sa.text(
        "UPDATE leads SET last_activity_at = COALESCE((SELECT max(e.occurred_at) FROM events e "
        f"WHERE e.lead_id = leads.id AND e.is_bot = :no AND e.type NOT IN ({kinds})), "
        "created_at), engagement_at = updated_at, engagement_key = -1.0e9"), {"no": False})
    half_life = _half_life(bind)
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    rows = bind.execute(sa.text(
        "SELECT id, engagement_score, engagement_at FROM leads WHERE engagement_score > 0"))
    updates = []
    for lead_id, score, at in rows:
        when = app.db.UTCDateTime().process_result_value(
            datetime.fromisoformat(at) if isinstance(at, str) else at, None)
        key = math.log2(score) + (when - epoch).total_seconds() / 86400 / half_life
        updates.append({"id": lead_id, "key": key})
    for start in range(0, len(updates), 5000):
        bind.execute(sa.text("UPDATE leads SET engagement_key = :key WHERE id = :id"),
                     updates[start:start + 5000])


def downgrade():
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_name')
        batch_op.drop_index('ix_leads_fit')
        batch_op.drop_index('ix_leads_engagement')
        batch_op.drop_index('ix_leads_created')
        batch_op.drop_index('ix_leads_activity')
        batch_op.drop_column('last_activity_at')
        batch_op.drop_column('engagement_key')
        batch_op.drop_column('engagement_at')

    with op.batch_alter_table('lead_saved_views', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_saved_views_user_id'))

    op.drop_table('lead_saved_views')
    op.drop_table('lead_bulk_jobs')

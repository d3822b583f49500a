"""nurture_email_firsts: the day each sequence email first had each kind of event (issue 12)

Revision ID: 0027a_email_firsts
Revises: 0026b_lead_campaigns
Create Date: 2026-12-02 15:30:00

The Email report counts an email once per kind (sent, a person's open, a machine's click, ...)
on the day that first happened. It used to find out by reading each day's leads' earlier
events again (2.7 s for today's numbers at 1,000,000 leads, and a pruned log made a later open
look like a first). Now the email rollup keeps this table (`nurture.reports.record_firsts`).

The table is filled here from the stored events in one INSERT ... SELECT (a read of events:
concurrent inserts are not blocked), and the rollup's mark is set to the newest event id, so
the next refresh goes on from there. Event type codes are the fixed ones of
`app.leads.event_types.FIXED` (never renumbered, so reading them here is safe).
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from app.leads.event_types import FIXED

revision = '0027a_email_firsts'
down_revision = '0026b_lead_campaigns'
branch_labels = None
depends_on = None

_METRIC = """CASE
  WHEN type = {email_sent} THEN 'email_sent'
  WHEN type = {unsubscribed} THEN 'email_unsubscribed'
  WHEN type = {bounced} THEN 'email_bounced'
  WHEN type = {email_opened} AND {{bot}} THEN 'email_open_machine'
  WHEN type = {email_opened} THEN 'email_open_human'
  WHEN type = {email_clicked} AND {{bot}} THEN 'email_click_machine'
  WHEN type = {email_clicked} THEN 'email_click_human'
END""".format(**FIXED)
_TYPES = ", ".join(str(FIXED[name]) for name in (
    "email_sent", "unsubscribed", "bounced", "email_opened", "email_clicked"))


def upgrade():
    op.create_table(
        'nurture_email_firsts',
        sa.Column('send_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('metric', sa.String(length=24), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('send_id', 'metric', name=op.f('pk_nurture_email_firsts')),
    )
    bind = op.get_bind()
    newest = bind.scalar(sa.text("SELECT max(id) FROM events")) or 0
    if bind.dialect.name == 'postgresql':
        key = "(data->>'send_id')"
        op.execute(f"""
            INSERT INTO nurture_email_firsts (send_id, metric, day)
            SELECT {key}::bigint, metric, min((occurred_at AT TIME ZONE 'UTC')::date)
            FROM (SELECT data, occurred_at, {_METRIC.format(bot='is_bot')} AS metric
                  FROM events WHERE type IN ({_TYPES}) AND id <= {int(newest)}
                    AND {key} ~ '^[0-9]{{1,18}}$') e
            WHERE metric IS NOT NULL GROUP BY 1, 2""")
    else:
        key = "json_extract(data, '$.send_id')"
        op.execute(f"""
            INSERT INTO nurture_email_firsts (send_id, metric, day)
            SELECT CAST({key} AS INTEGER), metric, min(date(occurred_at))
            FROM (SELECT data, occurred_at, {_METRIC.format(bot='is_bot = 1')} AS metric
                  FROM events WHERE type IN ({_TYPES}) AND id <= {int(newest)}
                    AND CAST({key} AS TEXT) GLOB '[0-9]*'
                    AND NOT CAST({key} AS TEXT) GLOB '*[^0-9]*') e
            WHERE metric IS NOT NULL GROUP BY 1, 2""")
    state = sa.table('report_state', sa.column('name', sa.String),
                     sa.column('value', sa.JSON().with_variant(JSONB(), 'postgresql')),
                     sa.column('updated_at', sa.DateTime(timezone=True)))
    now = datetime.now(UTC)
    op.execute("DELETE FROM report_state WHERE name = 'email_firsts'")
    op.bulk_insert(state, [{
        "name": "email_firsts", "value": {"low": int(newest), "high": int(newest)},
        "updated_at": now.replace(tzinfo=None) if bind.dialect.name == 'sqlite' else now}])


def downgrade():
    op.execute("DELETE FROM report_state WHERE name = 'email_firsts'")
    op.drop_table('nurture_email_firsts')

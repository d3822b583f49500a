"""events: send_id / step_id as integer columns instead of keys of data (issue 14)

Revision ID: 0027b_event_send_columns
Revises: 0027a_email_firsts
Create Date: 2026-12-02 15:00:00

The nurture email an event is about (`send_id`, stored as a string, and `step_id`, a number)
moves from the JSON `data` into two nullable integer columns: 8 bytes in the row instead of
about 40 of JSON, and `data` becomes NULL for most opens, clicks and deliveries. A key moves only
when it has the shape the writers gave it (send_id a string of digits, step_id an integer, both
below 2**31: `app.leads.event_columns.split_send`), so `with_send` shows the event as before;
any other "send_id" (a custom event's own) stays in `data`.

PostgreSQL, built for a large live `events` table (10,000,000 rows in production):
- the two ADD COLUMNs are nullable without a default: catalog changes, no rewrite; they wait
  at most 10 s for their brief exclusive lock (lock_timeout) instead of queueing every writer
  behind a long reader; the migration fails then and can simply be run again;
- the rows are then moved outside the migration's transaction, in committed batches of 20,000
  ids (each UPDATE locks only its own rows for a fraction of a second: inserts never wait, a
  visitor attach to one of those rows waits for one batch at most); the columns exist already,
  so an interrupted run resumes where it stopped (a moved key is no longer in `data`);
- then VACUUM (ANALYZE) events (no lock against reads or writes) so the space of the old row
  versions is reused by the next inserts rather than growing the table.
SQLite: ALTER TABLE ADD COLUMN (no rebuild, the lead_campaigns triggers stay) and the rows moved
in one pass. Downgrade puts the keys back into `data` and drops the columns.
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0027b_event_send_columns'
down_revision = '0027a_email_firsts'
branch_labels = None
depends_on = None

BATCH = 20_000
_DIGITS = "'^(0|[1-9][0-9]{0,9})$'"


def _column_int_sql(key: str, json_type: str) -> str:
    """`app.leads.event_columns._column_int` of data->key in SQL (NULL when it stays)."""
    text = f"(data->>'{key}')"
    return (f"CASE WHEN jsonb_typeof(data->'{key}') = '{json_type}' AND {text} ~ {_DIGITS} "
            f"THEN CASE WHEN {text}::bigint < 2147483648 THEN {text}::integer END END")


_MOVE = f"""
UPDATE events AS e SET send_id = m.send_id, step_id = m.step_id,
       data = NULLIF(e.data - array_remove(ARRAY[
                  CASE WHEN m.send_id IS NOT NULL THEN 'send_id' END,
                  CASE WHEN m.step_id IS NOT NULL THEN 'step_id' END], NULL), '{{}}'::jsonb)
FROM (SELECT id, {_column_int_sql('send_id', 'string')} AS send_id,
             {_column_int_sql('step_id', 'number')} AS step_id
      FROM events
      WHERE id > :low AND id <= :high AND (data ? 'send_id' OR data ? 'step_id')) AS m
WHERE e.id = m.id AND (m.send_id IS NOT NULL OR m.step_id IS NOT NULL)
"""

_BACK = """
UPDATE events SET send_id = NULL, step_id = NULL,
       data = COALESCE(data, '{}'::jsonb) || jsonb_strip_nulls(jsonb_build_object(
                  'send_id', send_id::text, 'step_id', step_id))
WHERE id > :low AND id <= :high AND (send_id IS NOT NULL OR step_id IS NOT NULL)
"""


def _in_batches(statement: str) -> None:
    """Run `statement` over every id range of BATCH, each batch committed on its own."""
    context = op.get_context()
    with context.autocommit_block():
        bind = op.get_bind()
        low, top = bind.execute(sa.text("SELECT min(id) - 1, max(id) FROM events")).one()
        while top is not None and low < top:
            bind.execute(sa.text(statement), {"low": low, "high": low + BATCH})
            low += BATCH
        bind.execute(sa.text("VACUUM (ANALYZE) events"))


def _column_int(value, shape):
    """As `app.leads.event_columns._column_int` (copied: a migration keeps its own logic)."""
    if type(value) is not shape:
        return None
    if shape is str and not (value.isascii() and value.isdigit() and len(value) < 11):
        return None
    number = int(value)
    return number if 0 <= number < 2**31 and str(number) == str(value) else None


def _sqlite_rows(where: str):
    bind = op.get_bind()
    return bind, bind.execute(sa.text(
        f"SELECT id, data, send_id, step_id FROM events WHERE {where}")).all()


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute("SET LOCAL lock_timeout = '10s'")
        op.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS send_id integer, "
                   "ADD COLUMN IF NOT EXISTS step_id integer")
        _in_batches(_MOVE)
        return
    op.add_column('events', sa.Column('send_id', sa.Integer(), nullable=True))
    op.add_column('events', sa.Column('step_id', sa.Integer(), nullable=True))
    bind, rows = _sqlite_rows("json_extract(data, '$.send_id') IS NOT NULL "
                              "OR json_extract(data, '$.step_id') IS NOT NULL")
    for row_id, raw, _, _ in rows:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        send_id = _column_int(data.get('send_id'), str)
        step_id = _column_int(data.get('step_id'), int)
        if send_id is None and step_id is None:
            continue
        for key, value in (('send_id', send_id), ('step_id', step_id)):
            if value is not None:
                del data[key]
        bind.execute(sa.text("UPDATE events SET data = :data, send_id = :send, step_id = :step "
                             "WHERE id = :id"),
                     {"data": json.dumps(data) if data else None, "send": send_id,
                      "step": step_id, "id": row_id})


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        _in_batches(_BACK)
        op.execute("SET LOCAL lock_timeout = '10s'")
        op.execute("ALTER TABLE events DROP COLUMN step_id, DROP COLUMN send_id")
        return
    bind, rows = _sqlite_rows("send_id IS NOT NULL OR step_id IS NOT NULL")
    for row_id, raw, send_id, step_id in rows:
        data = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        if send_id is not None:
            data['send_id'] = str(send_id)
        if step_id is not None:
            data['step_id'] = step_id
        bind.execute(sa.text("UPDATE events SET data = :data WHERE id = :id"),
                     {"data": json.dumps(data), "id": row_id})
    from app.leads import campaign_members

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('step_id')
        batch_op.drop_column('send_id')
    campaign_members.install(bind)  # the rebuilt table lost its triggers

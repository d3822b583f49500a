"""events: the dedupe key as an 8-byte digest (bigint) instead of a 16-byte uuid (issue 14)

Revision ID: 0026a_event_dedupe_bigint
Revises: 0025a_leads_api_indexes
Create Date: 2026-12-02 10:30:00

The stored digest becomes the first 8 bytes of the key's MD5 (`app.leads.event_columns`), which
are the first 8 bytes of the uuid stored before: existing rows convert in place, and a key
written before still matches the same key written after (one row per key).

On PostgreSQL one ALTER TABLE (a rewrite of events and its indexes). Two stored keys whose
digests share their first 8 bytes would make it fail on the unique index and roll back
(practically impossible: about n²/2⁶⁵ over n keys). On SQLite row by row, then the table is
rebuilt. Downgrade pads the 8 bytes back to a uuid: keys written before no longer match their
16-byte digests (a repeat of one of them may then be written once more).
"""
import sqlalchemy as sa
from alembic import op

revision = '0026a_event_dedupe_bigint'
down_revision = '0025a_leads_api_indexes'
branch_labels = None
depends_on = None


def _convert(postgres_type, using, convert, from_type, to_type):
    """The dedupe_key column from one stored digest to the other, rows included."""
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute(f"ALTER TABLE events ALTER COLUMN dedupe_key TYPE {postgres_type} "
                   f"USING {using}")
        return
    rows = bind.execute(sa.text(
        "SELECT id, dedupe_key FROM events WHERE dedupe_key IS NOT NULL")).all()
    for row_id, key in rows:
        bind.execute(sa.text("UPDATE events SET dedupe_key = :key WHERE id = :id"),
                     {"id": row_id, "key": convert(key)})
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('dedupe_key', existing_type=from_type, type_=to_type,
                              existing_nullable=True)


def upgrade():
    _convert("bigint", "('x' || left(replace(dedupe_key::text, '-', ''), 16))::bit(64)::bigint",
             lambda key: int.from_bytes(bytes(key)[:8], "big", signed=True),
             sa.LargeBinary(length=16), sa.BigInteger())


def downgrade():
    _convert("uuid", "(lpad(to_hex(dedupe_key), 16, '0') || repeat('0', 16))::uuid",
             lambda key: int(key).to_bytes(8, "big", signed=True) + bytes(8),
             sa.BigInteger(), sa.LargeBinary(length=16))

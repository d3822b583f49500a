"""events: small rows (issue 14) — the type as an integer code (names in event_types for
codes outside the fixed table), data NULL when empty, the dedupe key as its 16-byte MD5 digest,
a lead_id index in place of (lead_id, occurred_at)

Revision ID: 0023a_small_events
Revises: 0019_intake
Create Date: 2026-12-02 06:45:00

Existing rows are converted in place: on PostgreSQL by one ALTER TABLE (a single rewrite,
the digests computed by `md5(key)::uuid`), on SQLite row by row before the table is rebuilt.
Downgrade restores names; dedupe keys come back as their digests in hex (the keys themselves
are gone), which still keeps one row per key for every key written before.
"""
import hashlib

import sqlalchemy as sa
from alembic import op

from app.leads.event_types import FIXED, hashed_code

revision = '0023a_small_events'
down_revision = '0019_intake'
branch_labels = None
depends_on = None


def _code(name):
    return FIXED.get(name) or hashed_code(name)


def upgrade():
    bind = op.get_bind()
    op.create_table(
        'event_types',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_event_types')),
        sa.UniqueConstraint('name', name=op.f('uq_event_types_name')),
    )
    names = [row[0] for row in bind.execute(sa.text("SELECT DISTINCT type FROM events"))]
    custom = [{"id": hashed_code(n), "name": n} for n in names if n not in FIXED]
    if custom:
        bind.execute(sa.text("INSERT INTO event_types (id, name) VALUES (:id, :name)"), custom)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_lead_time')

    if bind.dialect.name == 'postgresql':
        whens = " ".join(f"WHEN '{n.replace(chr(39), chr(39) * 2)}' THEN {_code(n)}"
                         for n in names)
        using = f"CASE type {whens} END" if names else "NULL"
        op.execute(
            "ALTER TABLE events "
            f"ALTER COLUMN type TYPE integer USING ({using}), "
            "ALTER COLUMN dedupe_key TYPE uuid USING md5(dedupe_key)::uuid, "
            "ALTER COLUMN data DROP NOT NULL, "
            "ALTER COLUMN data TYPE jsonb USING NULLIF(data, '{}'::jsonb)")
    else:
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.alter_column('data', existing_type=sa.JSON(), nullable=True)
        rows = bind.execute(sa.text("SELECT id, type, dedupe_key, data FROM events")).all()
        for row_id, name, key, data in rows:
            bind.execute(sa.text(
                "UPDATE events SET type = :type, dedupe_key = :key, data = :data WHERE id = :id"),
                {"id": row_id, "type": _code(name),
                 "key": None if key is None else hashlib.md5(key.encode()).digest(),
                 "data": None if data in (None, "{}", "null") else data})
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.alter_column('type', existing_type=sa.String(length=40),
                                  type_=sa.Integer(), existing_nullable=False)
            batch_op.alter_column('dedupe_key', existing_type=sa.String(length=200),
                                  type_=sa.LargeBinary(length=16), existing_nullable=True)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_lead', ['lead_id'], unique=False)


def downgrade():
    bind = op.get_bind()
    names = dict(FIXED)
    names.update({n: c for c, n in bind.execute(sa.text("SELECT id, name FROM event_types"))})
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_lead')
    if bind.dialect.name == 'postgresql':
        whens = " ".join(f"WHEN {c} THEN '{n.replace(chr(39), chr(39) * 2)}'"
                         for n, c in names.items())
        op.execute(
            "ALTER TABLE events "
            f"ALTER COLUMN type TYPE varchar(40) USING (CASE type {whens} "
            "ELSE 'unknown-' || type END), "
            "ALTER COLUMN dedupe_key TYPE varchar(200) USING replace(dedupe_key::text, '-', ''), "
            "ALTER COLUMN data TYPE jsonb USING COALESCE(data, '{}'::jsonb), "
            "ALTER COLUMN data SET NOT NULL")
    else:
        by_code = {c: n for n, c in names.items()}
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.alter_column('type', existing_type=sa.Integer(),
                                  type_=sa.String(length=40), existing_nullable=False)
            batch_op.alter_column('dedupe_key', existing_type=sa.LargeBinary(length=16),
                                  type_=sa.String(length=200), existing_nullable=True)
        rows = bind.execute(sa.text("SELECT id, type, dedupe_key FROM events")).all()
        for row_id, code, key in rows:
            bind.execute(sa.text(
                "UPDATE events SET type = :type, dedupe_key = :key, "
                "data = COALESCE(data, '{}') WHERE id = :id"),
                {"id": row_id, "type": by_code.get(int(code), f"unknown-{code}"),
                 "key": None if key is None else bytes(key).hex()})
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.alter_column('data', existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_lead_time', ['lead_id', 'occurred_at'], unique=False)
    op.drop_table('event_types')

"""privacy: consent purposes, ledger, erasures

Revision ID: 0022a_consent
Revises: 0018a_lead_awaiting_confirmation
Create Date: 2026-12-02 02:49:39.980023

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401  used by rendered JSONB columns

import app.db

# revision identifiers, used by Alembic.
revision = '0022a_consent'
down_revision = '0018a_lead_awaiting_confirmation'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('consent_purposes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_purposes')),
    sa.UniqueConstraint('key', name=op.f('uq_consent_purposes_key'))
    )
    op.create_table('privacy_erased_addresses',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('erased_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_privacy_erased_addresses'))
    )
    op.create_table('privacy_erasures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('erased_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('removed', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_privacy_erasures'))
    )
    op.create_table('consent_texts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['purpose_id'], ['consent_purposes.id'], name=op.f('fk_consent_texts_purpose_id_consent_purposes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_texts')),
    sa.UniqueConstraint('purpose_id', 'version', name=op.f('uq_consent_texts_purpose_id_version'))
    )
    op.create_table('form_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('purpose_id', sa.Integer(), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['form_id'], ['forms.id'], name=op.f('fk_form_consents_form_id_forms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['purpose_id'], ['consent_purposes.id'], name=op.f('fk_form_consents_purpose_id_consent_purposes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_consents')),
    sa.UniqueConstraint('form_id', 'purpose_id', name=op.f('uq_form_consents_form_id_purpose_id'))
    )
    with op.batch_alter_table('form_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_consents_form_id'), ['form_id'], unique=False)

    op.create_table('consent_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('purpose_id', sa.Integer(), nullable=False),
    sa.Column('text_id', sa.Integer(), nullable=True),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_consent_records_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['purpose_id'], ['consent_purposes.id'], name=op.f('fk_consent_records_purpose_id_consent_purposes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['text_id'], ['consent_texts.id'], name=op.f('fk_consent_records_text_id_consent_texts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_records'))
    )
    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.create_index('ix_consent_records_lead_purpose', ['lead_id', 'purpose_id', 'id'], unique=False)

    with op.batch_alter_table('nurture_sequences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('required_purpose_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_nurture_sequences_required_purpose_id_consent_purposes'), 'consent_purposes', ['required_purpose_id'], ['id'], ondelete='SET NULL')



def downgrade():
    with op.batch_alter_table('nurture_sequences', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_nurture_sequences_required_purpose_id_consent_purposes'), type_='foreignkey')
        batch_op.drop_column('required_purpose_id')

    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_records_lead_purpose')

    op.drop_table('consent_records')
    with op.batch_alter_table('form_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_consents_form_id'))

    op.drop_table('form_consents')
    op.drop_table('consent_texts')
    op.drop_table('privacy_erasures')
    op.drop_table('privacy_erased_addresses')
    op.drop_table('consent_purposes')

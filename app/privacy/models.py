"""Privacy's tables: consent purposes and their versioned texts, the consent ledger, erasure
audit rows and the keyed-hash list of erased addresses."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Model, UTCDateTime, utcnow


class ConsentPurpose(Model):
    """Something a person can agree to be emailed about ("product news", "events")."""

    __tablename__ = "consent_purposes"

    id: Mapped[int] = mapped_column(primary_key=True)
    # A stable name: the form field is `consent_<key>`, imports and the API name it.
    key: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Every text it ever had, oldest first; people see the latest (the ledger keeps which).
    texts: Mapped[list[ConsentText]] = relationship(
        back_populates="purpose", order_by="ConsentText.version", cascade="all, delete-orphan")

    @property
    def current_text(self) -> ConsentText | None:
        return self.texts[-1] if self.texts else None


class ConsentText(Model):
    """One version of a purpose's text, never changed once a person may have seen it."""

    __tablename__ = "consent_texts"
    __table_args__ = (sa.UniqueConstraint("purpose_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose_id: Mapped[int] = mapped_column(
        sa.ForeignKey("consent_purposes.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    text: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purpose: Mapped[ConsentPurpose] = relationship(back_populates="texts")


class ConsentRecord(Model):
    """The consent ledger: one row per grant or withdrawal, never edited."""

    __tablename__ = "consent_records"
    __table_args__ = (sa.Index("ix_consent_records_lead_purpose", "lead_id", "purpose_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    purpose_id: Mapped[int] = mapped_column(
        sa.ForeignKey("consent_purposes.id", ondelete="CASCADE"))
    # The exact text agreed to (None for a withdrawal, or an import's basis with no text).
    text_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("consent_texts.id", ondelete="SET NULL"))
    granted: Mapped[bool] = mapped_column()
    source: Mapped[str] = mapped_column(sa.String(20))  # form | import | api | unsubscribe | admin
    # What else the source said: the form's name, an import's legal basis ...
    detail: Mapped[str] = mapped_column(sa.String(300), default="")
    ip: Mapped[str] = mapped_column(sa.String(45), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purpose: Mapped[ConsentPurpose] = relationship()
    text: Mapped[ConsentText | None] = relationship()


class Erasure(Model):
    """Audit row of one erasure: who, when, why. No personal data."""

    __tablename__ = "privacy_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200))  # "user 3", "cli"
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    # What was removed, as counts per holder: {"events": 12, "outbox files": 1}.
    removed: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class ErasedAddress(Model):
    """An erased address, kept only as HMAC-SHA256(server secret, normalised address): marketing
    email to it is suppressed until the person opts in again through a form."""

    __tablename__ = "privacy_erased_addresses"

    digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

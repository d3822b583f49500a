"""Form definitions and what visitors submitted through them."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, Model, UTCDateTime, utcnow
from app.privacy.models import ConsentPurpose


class FieldType(str, enum.Enum):
    EMAIL = "email"
    TEXT = "text"
    TEXTAREA = "textarea"
    SELECT = "select"
    CHECKBOX = "checkbox"
    PHONE = "phone"
    COUNTRY = "country"
    HIDDEN = "hidden"


class SubmissionStatus(str, enum.Enum):
    ACCEPTED = "accepted"  # lead written, follow-up work scheduled
    PENDING = "pending_confirmation"  # double opt-in: waiting for the click
    EXPIRED = "expired"  # double opt-in never confirmed
    QUARANTINED = "quarantined"  # suspected spam: kept, no lead, releasable
    RELEASED = "released"  # a marketer released it from quarantine (then also accepted)


def new_form_key() -> str:
    return secrets.token_urlsafe(12)


class Form(Model):
    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public, unguessable id used by embed snippets and the JSON API.
    key: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_form_key)
    name: Mapped[str] = mapped_column(sa.String(200))
    submit_label: Mapped[str] = mapped_column(sa.String(100), default="Submit")
    # Consent: the exact text and its version are stored with every submission.
    consent_enabled: Mapped[bool] = mapped_column(default=False)
    consent_required: Mapped[bool] = mapped_column(default=True)
    consent_text: Mapped[str] = mapped_column(sa.Text, default="")
    consent_version: Mapped[str] = mapped_column(sa.String(40), default="1")
    double_opt_in: Mapped[bool] = mapped_column(default=False)
    confirmation_expiry_hours: Mapped[int] = mapped_column(default=72)
    # Spam defence
    min_submit_seconds: Mapped[int] = mapped_column(default=2)
    blocked_domains: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Embedding: origins allowed to post to the JSON API (CORS), e.g. "https://www.acme.example"
    allowed_origins: Mapped[list[str]] = mapped_column(JSONType, default=list)
    success_message: Mapped[str] = mapped_column(sa.Text, default="Thank you!")
    # Bumped on every change of the definition: the built WTForms class is cached per version.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    fields: Mapped[list[FormField]] = relationship(
        back_populates="form", order_by="FormField.position", cascade="all, delete-orphan"
    )
    # Consent per purpose: one checkbox each, after the fields (see forms.consents).
    consents: Mapped[list[FormConsent]] = relationship(
        back_populates="form", order_by="FormConsent.position", cascade="all, delete-orphan"
    )

    def touch(self) -> None:
        """Call after changing the definition or its fields: invalidates the cached class."""
        self.version = (self.version or 0) + 1
        self.updated_at = utcnow()


class FormField(Model):
    __tablename__ = "form_fields"
    __table_args__ = (sa.UniqueConstraint("form_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(sa.ForeignKey("forms.id", ondelete="CASCADE"), index=True)
    # The key the value is stored under: a lead column (first_name, company, ...) or an attribute.
    name: Mapped[str] = mapped_column(sa.String(60))
    label: Mapped[str] = mapped_column(sa.String(200))
    type: Mapped[str] = mapped_column(sa.String(20), default=FieldType.TEXT.value)
    help_text: Mapped[str] = mapped_column(sa.String(500), default="")
    required: Mapped[bool] = mapped_column(default=False)
    max_length: Mapped[int] = mapped_column(default=200)
    choices: Mapped[list[str]] = mapped_column(JSONType, default=list)  # for select
    position: Mapped[int] = mapped_column(default=0)

    form: Mapped[Form] = relationship(back_populates="fields")


class FormConsent(Model):
    """A consent checkbox on a form: one purpose (app.privacy), its text shown as the label."""

    __tablename__ = "form_consents"
    __table_args__ = (sa.UniqueConstraint("form_id", "purpose_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(sa.ForeignKey("forms.id", ondelete="CASCADE"), index=True)
    purpose_id: Mapped[int] = mapped_column(
        sa.ForeignKey("consent_purposes.id", ondelete="CASCADE"))
    required: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)

    form: Mapped[Form] = relationship(back_populates="consents")
    purpose: Mapped[ConsentPurpose] = relationship()

    @property
    def field_name(self) -> str:
        return f"consent_{self.purpose.key}"


class Submission(Model):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(sa.ForeignKey("forms.id", ondelete="CASCADE"), index=True)
    lead_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(24), default=SubmissionStatus.ACCEPTED.value,
                                        index=True)
    quarantine_reason: Mapped[str | None] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(320), default="")  # normalised, for lists
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # cleaned
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # as posted (capped)
    consent_given: Mapped[bool] = mapped_column(default=False)
    consent_text: Mapped[str] = mapped_column(sa.Text, default="")
    consent_version: Mapped[str] = mapped_column(sa.String(40), default="")
    utm: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)  # utm_*, gclid
    referrer: Mapped[str] = mapped_column(sa.Text, default="")
    landing_url: Mapped[str] = mapped_column(sa.Text, default="")
    ip: Mapped[str] = mapped_column(sa.String(45), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(500), default="")
    visitor_id: Mapped[str | None] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(sa.String(10), default="hosted")  # hosted | embed | import
    # Where it came from, owned by other packages; kept as plain ids (forms knows no campaigns).
    campaign_id: Mapped[int | None] = mapped_column(index=True)
    landing_page_id: Mapped[int | None] = mapped_column()
    # Same form, same email, same values within a short window: one submission (double click).
    fingerprint: Mapped[str] = mapped_column(sa.String(64), index=True, default="")
    # The intake row it was made from (`forms.processor`): unique, so it is made once.
    intake_id: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

    form: Mapped[Form] = relationship()
    lead = relationship("Lead")
    released_by = relationship("User", foreign_keys=[released_by_id])


class IntakeStatus(str, enum.Enum):
    NEW = "new"  # received, waiting for the intake processor
    DONE = "done"  # became a submission (accepted, pending, quarantined or a duplicate)
    FAILED = "failed"  # could not be processed after `forms.processor.MAX_ATTEMPTS`


class Intake(Model):
    """One submit, exactly as received: the only row the visitor's request writes.

    The intake processor (`forms.processor`) turns it into the lead, the submission, the
    `form_submitted` event and the follow-up work, in batches, exactly once. The id is made in
    the app (a UUID), so the thank-you page and the download link can name it at once."""

    __tablename__ = "intake"
    __table_args__ = (sa.Index("ix_intake_status_received", "status", "received_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    form_id: Mapped[int] = mapped_column()  # a plain id: a deleted form fails its rows
    form_version: Mapped[int] = mapped_column(default=1)
    channel: Mapped[str] = mapped_column(sa.String(10), default="hosted")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # validated values
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # as posted (capped)
    # What the visitor agreed to, as the form said it when they submitted.
    consent_text: Mapped[str] = mapped_column(sa.Text, default="")
    consent_version: Mapped[str] = mapped_column(sa.String(40), default="")
    utm_defaults: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    campaign_id: Mapped[int | None] = mapped_column()
    landing_page_id: Mapped[int | None] = mapped_column()
    ip: Mapped[str] = mapped_column(sa.String(45), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(500), default="")
    visitor_id: Mapped[str | None] = mapped_column(sa.String(64))
    suspect_reason: Mapped[str | None] = mapped_column(sa.String(200))  # spam signals seen
    # The same post within the duplicate window: one row (fingerprint + window bucket).
    dedupe_key: Mapped[str] = mapped_column(sa.String(100), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(10), default=IntakeStatus.NEW.value)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    submission_id: Mapped[int | None] = mapped_column()
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

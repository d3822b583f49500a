"""Campaigns, their landing pages and the gated assets those pages give away."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Model, UTCDateTime, utcnow


class CampaignStatus(str, enum.Enum):
    DRAFT = "draft"
    LIVE = "live"
    ARCHIVED = "archived"


class Channel(str, enum.Enum):
    PAID = "paid"
    OWNED = "owned"
    EARNED = "earned"


class Campaign(Model):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    slug: Mapped[str] = mapped_column(sa.String(80), unique=True)
    status: Mapped[str] = mapped_column(sa.String(12), default=CampaignStatus.DRAFT.value,
                                        index=True)
    channel: Mapped[str] = mapped_column(sa.String(12), default=Channel.OWNED.value)
    # UTM defaults, used when a visitor arrives without their own utm_* parameters.
    utm_source: Mapped[str] = mapped_column(sa.String(100), default="")
    utm_medium: Mapped[str] = mapped_column(sa.String(100), default="")
    utm_campaign: Mapped[str] = mapped_column(sa.String(100), default="")
    cost: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), default=Decimal(0))
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    # The send-window time zone of this campaign's leads who gave neither a zone nor a country
    # ("" = the sequence's own).
    timezone: Mapped[str] = mapped_column(sa.String(64), default="")
    starts_on: Mapped[date | None] = mapped_column(sa.Date)
    ends_on: Mapped[date | None] = mapped_column(sa.Date)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    owner = relationship("User")
    pages: Mapped[list[LandingPage]] = relationship(back_populates="campaign",
                                                      order_by="LandingPage.id")


class Asset(Model):
    """A gated asset: an uploaded file under <instance>/uploads/, or an external URL."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    # Uploaded file: stored under a random name; the original name is used for the download.
    stored_name: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    filename: Mapped[str] = mapped_column(sa.String(255), default="")
    content_type: Mapped[str] = mapped_column(sa.String(100), default="")
    size: Mapped[int] = mapped_column(default=0)
    external_url: Mapped[str | None] = mapped_column(sa.Text)
    # How long an emailed or shown download link works.
    link_ttl_hours: Mapped[int] = mapped_column(default=72)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_file(self) -> bool:
        return self.stored_name is not None


class LandingPage(Model):
    __tablename__ = "landing_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
                                             index=True)
    slug: Mapped[str] = mapped_column(sa.String(80), unique=True)  # served at /p/<slug>
    headline: Mapped[str] = mapped_column(sa.String(200))
    body_markdown: Mapped[str] = mapped_column(sa.Text, default="")
    form_id: Mapped[int | None] = mapped_column(sa.ForeignKey("forms.id", ondelete="SET NULL"))
    asset_id: Mapped[int | None] = mapped_column(sa.ForeignKey("assets.id", ondelete="SET NULL"))
    thank_you_headline: Mapped[str] = mapped_column(sa.String(200), default="Thank you!")
    thank_you_markdown: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="pages")
    form = relationship("Form")
    asset: Mapped[Asset | None] = relationship()

    @property
    def status(self) -> str:
        return self.campaign.status


# Submission statuses whose lead may receive a page's asset (forms.models.SubmissionStatus
# values): accepted, or released from quarantine. A quarantined suspect never gets it.
DELIVERABLE_STATUSES = ("accepted", "released")

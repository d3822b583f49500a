"""Demo data: a live campaign with a landing page at /p/demo, its form and a small PDF guide.

Idempotent: a second run finds what the first made (by campaign slug, page slug, asset and form
name) and only repairs what is missing, such as the PDF file of a wiped instance folder.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from flask import current_app

from app.auth.models import find_user_by_email
from app.db import db
from campaigns import assets
from campaigns.models import Asset, Campaign, CampaignStatus, Channel, LandingPage
from forms.models import FieldType, Form, FormField

FORM_NAME = "Demo guide form"
ASSET_NAME = "The Demo Guide (PDF)"
BODY = """Everything we learned running **lead capture that never loses a lead**, in six pages:

- landing pages that load fast and work without JavaScript
- forms people finish: fewer fields, clear errors
- follow-up email that arrives once, not twice

Fill in the form and the guide is yours, right away and by email.
"""


def demo_pdf(title: str = "The Demo Guide") -> bytes:
    """A tiny valid one-page PDF (with a correct cross-reference table)."""
    text = f"BT /F1 24 Tf 72 720 Td ({title}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def _demo_form() -> Form:
    form = db.session.scalar(sa.select(Form).where(Form.name == FORM_NAME))
    if form is not None:
        return form
    form = Form(name=FORM_NAME, submit_label="Send me the guide", consent_enabled=True,
                consent_required=True,
                consent_text="I agree to receive the guide and occasional emails from Kindling.",
                success_message="Thank you! Your guide is on its way.")
    specs = [("email", "Work email", FieldType.EMAIL, True),
             ("first_name", "First name", FieldType.TEXT, True),
             ("company", "Company", FieldType.TEXT, False),
             ("job_title", "Job title", FieldType.TEXT, False),
             ("country", "Country", FieldType.COUNTRY, False)]
    for position, (name, label, kind, required) in enumerate(specs):
        form.fields.append(FormField(name=name, label=label, type=kind.value, required=required,
                                     position=position))
    db.session.add(form)
    db.session.flush()
    return form


def _demo_asset() -> Asset:
    asset = db.session.scalar(sa.select(Asset).where(Asset.name == ASSET_NAME))
    if asset is not None and assets.file_exists(asset):
        return asset
    stored = assets.store_bytes(demo_pdf(), "kindling-demo-guide.pdf")
    if asset is None:
        asset = Asset(name=ASSET_NAME, link_ttl_hours=72)
        db.session.add(asset)
    for key, value in stored.items():
        setattr(asset, key, value)
    db.session.flush()
    return asset


def seed_campaigns() -> list[str]:
    form = _demo_form()
    asset = _demo_asset()
    campaign = db.session.scalar(sa.select(Campaign).where(Campaign.slug == "demo"))
    if campaign is None:
        owner = find_user_by_email("marketer@example.com")
        campaign = Campaign(name="Demo campaign", slug="demo", status=CampaignStatus.LIVE.value,
                            channel=Channel.OWNED.value, utm_source="kindling",
                            utm_medium="landing-page", utm_campaign="demo-guide",
                            cost=Decimal(500), owner_id=owner.id if owner else None)
        db.session.add(campaign)
        db.session.flush()
    page = db.session.scalar(sa.select(LandingPage).where(LandingPage.slug == "demo"))
    if page is None:
        page = LandingPage(campaign=campaign, slug="demo",
                           headline="Get the Demo Guide to lead capture",
                           body_markdown=BODY, form_id=form.id, asset_id=asset.id,
                           thank_you_headline="Thank you! Your guide is ready.",
                           thank_you_markdown="We have also emailed you the link.")
        db.session.add(page)
    db.session.commit()
    return [f"Landing page: {current_app.config['BASE_URL']}/p/demo"]

"""The demo: a live campaign with /p/demo, its form and a PDF guide, seeded idempotently."""

import sqlalchemy as sa

from app.db import db
from campaigns.models import Asset, Campaign, LandingPage
from forms.models import Form


def test_seed_demo_makes_a_working_landing_page_once(app, client, runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "http://kindling.test/p/demo" in first.output
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output

    campaign = db.session.scalars(sa.select(Campaign).where(Campaign.slug == "demo")).one()
    assert campaign.status == "live" and campaign.channel == "owned" and campaign.cost == 500
    assert campaign.utm_source
    page = db.session.scalars(sa.select(LandingPage)).one()
    assert page.form.name == "Demo guide form"
    assert len(db.session.scalars(sa.select(Form).where(Form.name == "Demo guide form")).all()) == 1
    (asset,) = db.session.scalars(sa.select(Asset)).all()
    assert asset.content_type == "application/pdf"

    html = client.get("/p/demo").get_data(as_text=True)
    assert page.headline in html and 'name="email"' in html and 'name="country"' in html


def test_seeded_pdf_is_a_valid_pdf(app):
    from campaigns.seed import demo_pdf

    data = demo_pdf()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    xref = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert data[xref:].startswith(b"xref")
    assert len(data) < 1000

"""Nurture emails can give a lead their asset again: `asset_link(id)` in a step's template."""

import re

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from nurture.models import Sequence, StepKind
from nurture.render import render_step
from nurture.steps import add_step
from tests.campaigns.helpers import fill_and_submit, make_file_asset, make_form, make_page


def _step(asset_id: int):
    sequence = Sequence(name="Follow-up")
    db.session.add(sequence)
    db.session.flush()
    return add_step(sequence, StepKind.EMAIL, subject="Your guide",
                    body=f"Here it is again: [download]({{{{ asset_link({asset_id}) }}}})")


def test_a_submitting_lead_gets_a_working_download_link(app, client):
    asset = make_file_asset()
    make_page(form=make_form(), asset=asset)
    client.get("/p/guide")
    assert fill_and_submit(client, "guide", email="ann@example.com").status_code == 303
    lead = db.session.scalar(sa.select(Lead))
    rendered = render_step(_step(asset.id), lead, unsubscribe_url="http://kindling.test/u/x")
    (link,) = re.findall(r'href="http://kindling\.test(/d/[^"]+)"', rendered.html)
    download = client.get(link)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.get_data().startswith(b"%PDF")
    download.close()


def test_a_lead_without_a_submission_gets_no_link(app):
    from app.leads.service import upsert_lead

    asset = make_file_asset()
    lead = upsert_lead("bob@example.com").lead
    db.session.commit()
    rendered = render_step(_step(asset.id), lead, unsubscribe_url="http://kindling.test/u/x")
    assert "/d/" not in rendered.html

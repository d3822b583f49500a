"""The demo: an MQL waits in sales@example.com's queue, through the real handoff."""

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from app.sales.models import Alert, Assignment
from app.seed import run_seeders


def test_the_demo_has_an_mql_in_the_sales_queue_and_is_idempotent(app, client, auth):
    lines = run_seeders(app)
    assert any("/sales/queue" in line for line in lines)
    run_seeders(app)
    mqls = db.session.scalars(sa.select(Lead).where(Lead.stage == "mql")).all()
    assert mqls
    assignments = db.session.scalars(sa.select(Assignment)).all()
    assert len(assignments) == len({a.stage_change_id for a in assignments})
    assert any(a.user and a.user.email == "sales@example.com" for a in assignments)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == len(assignments)
    auth.login("sales@example.com", "kindling-demo")
    page = client.get("/sales/queue").get_data(as_text=True)
    assert mqls[0].display_name in page

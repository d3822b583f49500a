"""After the demo seed every report has something real to show."""

import csv
import io

import sqlalchemy as sa

from app.db import db
from app.outcomes.models import Outcome
from app.seed import run_seeders
from campaigns.models import Campaign


def test_the_demo_gives_every_report_numbers(app, client, auth):
    from app.leads.models import Event
    from nurture.models import Enrollment, Send

    def made():
        return [db.session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in (Event, Enrollment, Send)]

    run_seeders(app)
    first = made()
    run_seeders(app)  # idempotent: nothing new the second time
    assert made() == first
    demo = db.session.scalar(sa.select(Campaign).where(Campaign.slug == "demo"))
    assert demo.cost > 0 and demo.starts_on and demo.ends_on
    closed = db.session.scalars(sa.select(Outcome.stage).where(
        Outcome.stage.in_(["customer", "lost"]))).all()
    assert sorted(closed) == ["customer", "customer", "lost"]
    auth.login("marketer@example.com", "kindling-demo")
    for slug in ("funnel", "over-time", "cost", "speed", "scores"):
        html = client.get(f"/admin/reports/{slug}?since=2020-01-01").get_data(as_text=True)
        assert "Nothing to show" not in html, slug
    # What a newcomer opens: the default range (the last 30 days) already reaches the bottom
    # of the funnel.
    rows = client.get("/admin/reports/funnel.csv?table=funnel").get_data(as_text=True)
    counts = dict(line.split(",")[:2] for line in rows.splitlines()[1:])
    assert int(counts["Opportunity"]) >= 1 and int(counts["Customer"]) == 2, rows
    # The Email report: the demo people got the sequence when they came; people's opens and
    # clicks, and machines' (Apple's proxy, a link scanner) counted apart.
    rows = client.get("/admin/reports/email.csv?table=steps").get_data(as_text=True)
    welcome = next(row for row in csv.DictReader(io.StringIO(rows))
                   if "Your guide" in row["email"])
    assert int(welcome["sent"]) >= 10 and int(welcome["human_opens"]) >= 3, rows
    assert int(welcome["human_clicks"]) >= 1 and int(welcome["machine_opens"]) >= 1, rows
    assert int(welcome["machine_clicks"]) >= 1, rows
    html = client.get("/admin/scoring/calibration").get_data(as_text=True)
    assert "decided handoffs" in html

"""End to end: a lead becomes MQL → the outbox runs the listener in a real worker → an owner →
an alert with the story and working links → GET changes nothing → POST as the owner → SQL."""

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead
from app.leads.service import record_event
from app.sales.models import Alert, Assignment
from app.worker import run_worker
from tests.app.sales.helpers import body, links_in, mails, make_lead, make_mql, stage_changes
from tests.helpers import csrf_from, make_user


def test_an_mql_reaches_its_owner_and_is_accepted_over_http(app, client, auth):
    sam_id = make_user("sam@example.com", "sales").id
    lead = make_lead(job_title="CTO", country="GB")
    record_event(lead, "page_viewed", url="/pricing")
    db.session.commit()
    make_mql(lead)
    lead_id = lead.id

    run_worker(burst=True)  # the outbox row for the stage listener, then the alert's own row

    lead = db.session.get(Lead, lead_id)
    assert lead.owner_id == sam_id
    (assignment,) = db.session.scalars(sa.select(Assignment)).all()
    assert assignment.method == "round_robin" and assignment.user_id == sam_id
    assigned = db.session.scalars(sa.select(Event).where(Event.type == "owner_assigned")).all()
    assert [e.data["owner"] for e in assigned] == ["sam@example.com"]

    (message,) = mails()
    assert message["To"].addresses[0].addr_spec == "sam@example.com"
    assert "Dana Okafor" in message["Subject"]
    html = body(message, "html")
    assert "Who" in html and "Company: Acme" in html and "Job title: CTO" in html
    assert "Recent activity" in html and "/pricing" in html  # the story's timeline
    (alert,) = db.session.scalars(sa.select(Alert)).all()
    assert alert.status == "sent"
    accept = links_in(message)["accept"]
    assert "sam@example.com" not in accept

    auth.login("sam@example.com")
    page = client.get(accept)
    assert page.status_code == 200
    assert "Accept lead" in page.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Lead, lead_id).stage == "mql"  # a GET (a mail scanner) changes nothing

    done = client.post(accept, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert done.status_code == 200
    assert "you accepted this lead" in done.get_data(as_text=True)
    changes = stage_changes(lead)
    assert [(c.from_stage, c.to_stage, c.actor) for c in changes[-2:]] == [
        ("lead", "mql", "scoring"), ("mql", "sql", "user")]
    assert changes[-1].reason == "Accepted by sam@example.com"
    assert changes[-1].actor_user_id == sam_id


def test_running_the_listener_twice_assigns_and_alerts_once(app):
    make_user("sam@example.com", "sales")
    change = make_mql(make_lead())
    from app.sales.jobs import on_stage_change

    on_stage_change(change.id)
    on_stage_change(change.id)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Assignment)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 1
    owner_events = db.session.scalar(sa.select(sa.func.count()).select_from(Event)
                                     .where(Event.type == "owner_assigned"))
    assert owner_events == 1


def test_no_sales_user_alerts_the_team_address(app):
    from tests.app.sales.helpers import settings

    settings(team_email="team@example.com")
    change = make_mql(make_lead())
    from app.sales.jobs import on_stage_change

    on_stage_change(change.id)
    (alert,) = db.session.scalars(sa.select(Alert)).all()
    assert alert.recipient == "team@example.com" and alert.user_id is None
    (assignment,) = db.session.scalars(sa.select(Assignment)).all()
    assert assignment.method == "none" and "no active sales user" in assignment.reason


def test_a_lead_that_moved_on_before_the_job_ran_is_not_handed_off(app):
    make_user("sam@example.com", "sales")
    lead = make_lead()
    change = make_mql(lead)
    from app.leads.service import change_stage
    from app.sales.jobs import on_stage_change

    change_stage(lead, "customer", reason="signed", actor="user")
    db.session.commit()
    on_stage_change(change.id)
    assert db.session.scalars(sa.select(Assignment)).all() == []

"""Acceptance, end to end over HTTP with real workers: a visitor submits a landing page, opens
and clicks the nurture email (as a person), visits pricing → scoring makes an MQL with the
expected breakdown → an owner → an alert in the outbox → Accept → SQL, with the right
StageChange rows. Nothing here calls scoring or the handoff directly."""

import re
from datetime import timedelta

import sqlalchemy as sa
import time_machine
from rq import Queue

from app import queue
from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.sales.models import Alert, Assignment
from app.worker import run_worker
from forms.models import FieldType, Form, FormField
from nurture.scoring.admin_forms import thresholds_form_data
from nurture.tracking import writer
from tests.app.sales.helpers import body, links_in, mails, stage_changes
from tests.campaigns.helpers import fill_and_submit, make_page
from tests.helpers import csrf_from, make_user
from tests.nurture.factories import email_step, make_sequence
from tests.nurture.scoring.test_admin import post_rules
from tests.nurture.tracking.stories import BROWSER, HOME_IP

SITE = "https://www.acme.example"


def _form() -> Form:
    form = Form(name="Guide form", min_submit_seconds=0, submit_label="Get the guide")
    for position, name in enumerate(("email", "first_name", "last_name", "company",
                                     "job_title", "country")):
        kind = FieldType.EMAIL if name == "email" else FieldType.TEXT
        form.fields.append(FormField(name=name, label=name.replace("_", " ").capitalize(),
                                     type=kind.value, required=name == "email",
                                     position=position))
    db.session.add(form)
    db.session.commit()
    return form


def _browser(client, path: str):
    return client.get(path, headers={"User-Agent": BROWSER},
                      environ_base={"REMOTE_ADDR": HOME_IP})


def test_a_visitor_becomes_an_mql_then_an_sql_accepted_by_its_owner(app, client, auth):
    sam_id = make_user("sam@example.com", "sales").id
    # Marketing and sales agree on the thresholds in their screen: fit ≥ B, engagement ≥ 40.
    auth.login_as("marketer")

    def agree(data):
        data["mql_grade"], data["mql_engagement"] = "B", "40"

    saved = post_rules(client, agree, path="/admin/scoring/thresholds",
                       data_of=thresholds_form_data, save="Save")
    assert saved.status_code == 302
    auth.logout()
    form = _form()
    make_page(form=form)
    make_sequence(email_step(subject="Hello {{ lead.first_name }}",
                             body=f"Hi, [see the plans]({SITE}/pricing)."),
                  name="Welcome", trigger_form_id=form.id)

    # 1. The visitor submits the landing page form.
    submitted = fill_and_submit(client, "guide", email="dana@acme.example.com",
                                first_name="Dana", last_name="Okafor", company="Acme",
                                job_title="Director of Operations", country="GB")
    assert submitted.status_code == 303
    lead_id = db.session.scalar(sa.select(Lead.id).where(Lead.email == "dana@acme.example.com"))
    run_worker(burst=True)  # enrollment + the welcome email; scoring: engagement 15, no MQL
    assert db.session.get(Lead, lead_id).stage == "lead"
    (welcome,) = [m for m in mails() if m["Subject"] == "Hello Dana"]
    html = body(welcome, "html")
    pixel = re.search(r'<img src="http://kindling\.test(/t/o/[^"]+)"', html).group(1)
    pricing_click = re.search(r'href="http://kindling\.test(/t/c/[^"]+)"[^>]*>see the plans<',
                              html).group(1)  # the visible link, not the hidden honeypot

    later = utcnow() + timedelta(minutes=5)
    with time_machine.travel(later, tick=False):
        # 2. A person opens and clicks (a browser, minutes after delivery), 3. visits pricing.
        assert _browser(client, pixel).status_code == 200
        clicked = _browser(client, pricing_click)
        assert clicked.status_code == 302 and clicked.headers["Location"] == f"{SITE}/pricing"
        assert _browser(client, f"/t/v.gif?u={SITE}/pricing&r=").status_code == 200
        db.session.commit()
        writer.flush()  # the batch writer commits the events: one scoring job for the lead
        assert len(Queue("scoring", connection=queue.connection()).get_job_ids()) == 1
        run_worker(burst=True)  # scoring → MQL → listener → owner + alert → the alert's send

    lead = db.session.get(Lead, lead_id)
    assert lead.stage == "mql" and lead.fit_score == 30
    changes = stage_changes(lead)
    assert [(c.from_stage, c.to_stage, c.actor) for c in changes] == [
        (None, "lead", "form “Guide form”"), ("lead", "mql", "scoring")]
    assert changes[1].reason == ("engagement 41 ≥ 40 and fit A ≥ B; 1 visit to /pricing, "
                                 "1 form submission, 1 email click")

    # The breakdown, as the API gives it.
    auth.login("sam@example.com")
    why = client.get(f"/admin/api/leads/{lead_id}/score").get_json()
    assert (why["fit"]["grade"], why["fit"]["points"]) == ("A", 30)
    assert [(i["field"], i["points"]) for i in why["fit"]["items"]] == [
        ("job_title", 15), ("country", 10), ("company", 5)]
    assert sorted((i["event_type"], i["counted_points"]) for i in why["engagement"]["items"]) == [
        ("email_clicked", 5), ("email_opened", 1), ("form_submitted", 15), ("page_viewed", 20)]
    assert round(why["engagement"]["score"]) == 41 and why["mql"]["qualifies"] is True

    # The owner, logged; the alert persisted, sent once, in the outbox with the story.
    assert lead.owner_id == sam_id
    (assignment,) = db.session.scalars(sa.select(Assignment)).all()
    assert (assignment.method, assignment.user_id) == ("round_robin", sam_id)
    assert db.session.scalar(sa.select(Event).where(
        Event.type == "owner_assigned")).data["owner"] == "sam@example.com"
    (alert,) = db.session.scalars(sa.select(Alert)).all()
    assert (alert.kind, alert.status, alert.attempts) == ("mql", "sent", 1)
    (message,) = [m for m in mails() if m["Subject"].startswith("New MQL for you")]
    assert message["To"].addresses[0].addr_spec == "sam@example.com"
    html = body(message, "html")
    assert "Fit A (30 points), engagement 41" in html
    assert "Qualifies because: engagement 41 ≥ 40 and fit A ≥ B" in html
    assert "Fit +15: job title contains the word “VP”, “Vice President”, “Director” or " \
        "“Head”" in html and "/pricing" in html
    assert r"\b(VP" not in html  # the alert says the rule in words, never its pattern

    # Accept (the links were signed at the worker's time): GET shows the page and changes
    # nothing; the owner's POST makes it an SQL.
    with time_machine.travel(later + timedelta(minutes=1), tick=False):
        accept = links_in(message)["accept"]
        page = client.get(accept)
        assert page.status_code == 200 and "Accept lead" in page.get_data(as_text=True)
        db.session.expire_all()
        assert db.session.get(Lead, lead_id).stage == "mql"
        done = client.post(accept, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
        assert "you accepted this lead" in done.get_data(as_text=True)
        again = client.post(accept, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
        assert "Already done" in again.get_data(as_text=True)
        run_worker(burst=True)  # the rescoring the new events cause never moves an SQL
        changes = stage_changes(db.session.get(Lead, lead_id))
        assert [(c.from_stage, c.to_stage, c.actor) for c in changes] == [
            (None, "lead", "form “Guide form”"), ("lead", "mql", "scoring"),
            ("mql", "sql", "user")]
        assert (changes[2].reason, changes[2].actor_user_id) == ("Accepted by sam@example.com",
                                                                 sam_id)
        assert db.session.get(Lead, lead_id).stage == "sql"

"""Demo history for the reports: six weeks of the demo campaign, so after `make run` the funnel,
cost, speed, calibration and what-if pages show something real.

People submit the demo form through the real pipeline (hosted on /p/demo, a few through the
embedded form, credited to the campaign by its utm_campaign), visit the page, read pricing,
become MQLs, are accepted or rejected by sales, and close through `record_outcome` — with
their times moved back into the past. The demo campaign gets dates, so its cost is spread.
Idempotent: a second run finds the first demo person and does nothing.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.auth.models import find_user_by_email
from app.db import db, utcnow
from app.leads.models import Event, Lead, StageChange
from app.leads.service import change_stage, record_event
from app.outcomes.models import Outcome
from app.outcomes.service import record_outcome
from app.sales.alerts import alert_key
from app.sales.models import Alert, Assignment
from campaigns.models import Campaign, LandingPage
from forms import pipeline
from forms.builder import CONSENT

# (email, first name, company, job title, country, days ago, channel, utm_source, fate)
# Everyone was created in the last 30 days (the reports' default range), so the default
# funnel already shows opportunities and customers.
PEOPLE = [
    ("ava@northwind.example.com", "Ava", "Northwind", "VP Operations", "US", 28, "hosted",
     "google", ("customer", "18000")),
    ("ben@contoso.example.com", "Ben", "Contoso", "Director of IT", "GB", 26, "hosted",
     "linkedin", ("customer", "9500")),
    ("chloe@fabrikam.example.com", "Chloe", "Fabrikam", "Head of Growth", "DE", 24, "embed",
     "newsletter", ("lost", "12000")),
    ("dev@tailspin.example.com", "Dev", "Tailspin", "Director of Sales", "US", 22, "hosted",
     "google", ("opportunity", "7000")),
    ("emma@woodgrove.example.com", "Emma", "Woodgrove", "VP Marketing", "CA", 19, "hosted",
     "linkedin", ("sql", None)),
    ("farid@litware.example.com", "Farid", "Litware", "Director of Finance", "FR", 16, "embed",
     "newsletter", ("rejected", "Timing: budget frozen until next year")),
    ("gia@adatum.example.com", "Gia", "Adatum", "Head of Data", "NL", 14, "hosted", "google",
     ("rejected", "Student project, not a buyer")),
    ("hugo@proseware.example.com", "Hugo", "Proseware", "Director of Ops", "IE", 12, "hosted",
     "google", ("mql", None)),
    ("ines@fourthcoffee.example.com", "Ines", "Fourth Coffee", "Analyst", "US", 10, "hosted",
     "linkedin", ("lead", None)),
    ("jon@gmail.com", "Jon", "", "", "BR", 8, "hosted", "", ("lead", None)),
    ("kai@wingtip.example.com", "Kai", "Wingtip", "Engineer", "JP", 5, "embed", "newsletter",
     ("lead", None)),
    ("lena@alpine.example.com", "Lena", "Alpine Ski", "Director of Marketing", "DE", 2,
     "hosted", "google", ("lead", None)),
]
MARKER = PEOPLE[0][0]


def _submit(campaign: Campaign, page: LandingPage, person: tuple, *, repeat: bool = False
            ) -> Lead:
    email, first, company, title, country, _, channel, source, _ = person
    data = {"email": email, "first_name": first, "company": company, "job_title": title,
            "country": country, CONSENT: True}
    if repeat:
        data["job_title"] = f"{title} (again)"  # another answer: not a double click
    utm = {"utm_source": source} if source else {}
    if channel == "embed":
        ctx = pipeline.Context(channel="embed",
                               utm_defaults={**utm, "utm_campaign": campaign.utm_campaign})
    else:
        ctx = pipeline.Context(channel="hosted", campaign_id=campaign.id,
                               landing_page_id=page.id,
                               utm_defaults={**utm, "utm_campaign": campaign.utm_campaign})
    result = pipeline.accept(page.form, data, data, ctx)
    assert result.lead is not None
    return result.lead


def _backdate(lead: Lead, when) -> None:
    lead.created_at = when
    db.session.execute(sa.update(StageChange).where(StageChange.lead_id == lead.id)
                       .values(changed_at=when))
    db.session.execute(sa.update(Event).where(Event.lead_id == lead.id,
                                              Event.type == "form_submitted")
                       .values(occurred_at=when))


def _move(lead: Lead, stage: str, when, actor: str = "demo seed", reason: str = "") -> StageChange:
    change = change_stage(lead, stage, reason=reason or f"Demo: {stage}", actor=actor)
    assert change is not None
    change.changed_at = when
    db.session.flush()
    return change


def seed_demo_history() -> list[str]:
    campaign = db.session.scalar(sa.select(Campaign).where(Campaign.slug == "demo"))
    page = db.session.scalar(sa.select(LandingPage).where(LandingPage.slug == "demo"))
    rep = find_user_by_email("sales@example.com")
    if campaign is None or page is None or page.form is None or rep is None:
        return []
    now = utcnow()
    if campaign.starts_on is None:
        campaign.starts_on = (now - timedelta(days=45)).date()
        campaign.ends_on = (now + timedelta(days=14)).date()
    if db.session.scalar(sa.select(Lead.id).where(Lead.email == MARKER)) is not None:
        db.session.commit()
        return []
    for day in range(42):  # people's visits to /p/demo, and a few machines
        for n in range(2 + (day * 7) % 5):
            record_event(None, "page_viewed", occurred_at=now - timedelta(days=day, hours=n),
                         campaign_id=campaign.id, url="/p/demo", flush=False)
        if day % 6 == 0:
            record_event(None, "page_viewed", occurred_at=now - timedelta(days=day),
                         campaign_id=campaign.id, url="/p/demo", is_bot=True,
                         bot_reason="link scanner: demo", flush=False)
    closed = 0
    for person in PEOPLE:
        lead = _submit(campaign, page, person)
        days_ago, fate = person[5], person[8]
        start = now - timedelta(days=days_ago, hours=3)
        _backdate(lead, start)
        if fate[0] == "lead":
            continue
        for day in (1, 2, 3):  # reads pricing three days running: what makes an MQL
            record_event(lead, "page_viewed", occurred_at=start + timedelta(days=day - 1,
                                                                            hours=2),
                         url="/pricing", flush=False)
        mql_at = start + timedelta(days=2, hours=4)
        mql = _move(lead, "mql", mql_at,
                    reason="Demo: engagement 73 ≥ 50 and fit A ≥ C; 3 visits to /pricing")
        assignment = Assignment(lead_id=lead.id, stage_change_id=mql.id, user_id=rep.id,
                                method="round_robin", reason="demo", created_at=mql_at)
        db.session.add(assignment)
        db.session.flush()
        # The alert went out back then (history: nothing is sent now).
        db.session.add(Alert(key=alert_key("mql", assignment, rep.email), kind="mql",
                             assignment_id=assignment.id, lead_id=lead.id, user_id=rep.id,
                             recipient=rep.email, data={}, status="sent", attempts=1,
                             created_at=mql_at, sent_at=mql_at))
        lead.owner_id = rep.id
        if fate[0] == "mql":
            continue
        decided = mql_at + timedelta(hours=5 + days_ago % 7 * 6)
        if fate[0] == "rejected":
            assignment.outcome, assignment.decided_at = "recycled", decided
            assignment.decided_by_id, assignment.decision_reason = rep.id, str(fate[1])
            _move(lead, "recycled", decided, actor="user", reason=f"Rejected: {fate[1]}")
            continue
        assignment.outcome, assignment.decided_at, assignment.decided_by_id = (
            "accepted", decided, rep.id)
        _move(lead, "sql", decided, actor="user", reason="Accepted by sales@example.com")
        if fate[0] == "sql":
            continue
        steps = ["opportunity"] + ([fate[0]] if fate[0] != "opportunity" else [])
        for index, stage in enumerate(steps):
            when = decided + timedelta(days=4 + 6 * index)
            outcome = record_outcome(lead, stage, fate[1], "USD", f"DEMO-{lead.id}",
                                     actor="crm")
            outcome.recorded_at = when
            change = db.session.get_one(StageChange, outcome.stage_change_id)
            change.changed_at = when
            db.session.execute(sa.update(Event).where(
                Event.lead_id == lead.id, Event.type == "outcome_recorded",
                Event.data["outcome_id"].as_integer() == outcome.id).values(occurred_at=when))
            closed += stage in ("customer", "lost")
        db.session.flush()
    # Ava came back four weeks later for another guide: a repeat submission, not a new lead.
    _submit(campaign, page, PEOPLE[0], repeat=True)
    db.session.commit()
    won = db.session.scalar(sa.select(sa.func.sum(Outcome.amount))
                            .where(Outcome.stage == "customer")) or 0
    line = (f"Demo history: {len(PEOPLE)} people through the demo campaign, {closed} closed "
            f"({won:,.0f} USD won); reports at /admin/reports/")
    return [line]

"""A small world with known answers, made the way the product makes it: leads created by form
submissions (hosted and embedded), an import, stage moves with their times, sales handoffs with
decisions, page visits, and two campaigns with a cost. Dates are fixed (the clock is frozen at
NOW), so each report number can be worked out by hand and from the rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa

from app.auth.models import create_user
from app.db import db
from app.leads.models import Lead, StageChange
from app.leads.service import change_stage, record_event, upsert_lead
from app.sales.models import Assignment
from campaigns.models import Campaign, LandingPage
from forms.models import Form

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def at(day: int, hour: int = 10) -> datetime:
    """June `day`, 2026, at `hour` UTC."""
    return datetime(2026, 6, day, hour, tzinfo=UTC)


@dataclass
class World:
    a: Campaign
    b: Campaign
    leads: dict[str, Lead] = field(default_factory=dict)


def _lead(email: str, created: datetime, *, campaign_id: int | None, channel: str,
          utm_source: str = "", utm_campaign: str = "", form_id: int | None = None,
          source: str = "form “Guide”") -> Lead:
    lead = upsert_lead(email, {}, source=source).lead
    lead.created_at = created
    db.session.flush()
    db.session.execute(sa.update(StageChange).where(StageChange.lead_id == lead.id)
                       .values(changed_at=created))
    if source.startswith("form"):
        utm = {k: v for k, v in (("utm_source", utm_source), ("utm_campaign", utm_campaign))
               if v}
        record_event(lead, "form_submitted", occurred_at=created, campaign_id=campaign_id,
                     data={"form_id": form_id, "new_lead": True, "channel": channel,
                           "utm": utm})
    return lead


def _move(lead: Lead, stage: str, when: datetime, actor: str = "scoring") -> StageChange:
    change = change_stage(lead, stage, reason=f"to {stage}", actor=actor)
    change.changed_at = when
    db.session.flush()
    return change


def build() -> World:
    user = create_user("rep@example.com", "correct horse battery", "sales")
    form_a = Form(name="Guide A")
    form_b = Form(name="Guide B")
    embed = Form(name="Embedded")
    db.session.add_all([form_a, form_b, embed])
    db.session.flush()
    a = Campaign(name="Alpha", slug="alpha", cost=Decimal(3000), currency="USD",
                 utm_campaign="spring", starts_on=date(2026, 5, 1), ends_on=date(2026, 6, 29))
    b = Campaign(name="Beta", slug="beta", cost=Decimal(1000), currency="USD")
    db.session.add_all([a, b])
    db.session.flush()
    db.session.add_all([LandingPage(campaign_id=a.id, slug="alpha", headline="A",
                                    form_id=form_a.id),
                        LandingPage(campaign_id=b.id, slug="beta", headline="B",
                                    form_id=form_b.id)])
    world = World(a=a, b=b)
    L = world.leads
    # Alpha, hosted: five leads in the range June 1-15, one before it (May 20).
    L["a1"] = _lead("a1@x.example.com", at(2), campaign_id=a.id, channel="hosted",
                    utm_source="google", form_id=form_a.id)
    L["a2"] = _lead("a2@x.example.com", at(3), campaign_id=a.id, channel="hosted",
                    utm_source="google", form_id=form_a.id)
    L["a3"] = _lead("a3@x.example.com", at(5), campaign_id=a.id, channel="hosted",
                    utm_source="linkedin", form_id=form_a.id)
    L["a4"] = _lead("a4@x.example.com", at(8), campaign_id=a.id, channel="hosted",
                    form_id=form_a.id)
    L["a_old"] = _lead("old@x.example.com", datetime(2026, 5, 20, 9, tzinfo=UTC),
                       campaign_id=a.id, channel="hosted", form_id=form_a.id)
    # Alpha, embedded: credited by utm_campaign "spring".
    L["e1"] = _lead("e1@x.example.com", at(6), campaign_id=None, channel="embed",
                    utm_source="newsletter", utm_campaign="Spring", form_id=embed.id)
    # Beta, hosted, and an embedded form credited by its landing page's form.
    L["b1"] = _lead("b1@x.example.com", at(4), campaign_id=b.id, channel="hosted",
                    form_id=form_b.id)
    L["b2"] = _lead("b2@x.example.com", at(10), campaign_id=None, channel="embed",
                    form_id=form_b.id)
    # No campaign: an import, and a lead created today.
    L["imp"] = _lead("imp@x.example.com", at(7), campaign_id=None, channel="",
                     source="CSV import")
    L["today"] = _lead("today@x.example.com", at(15, 9), campaign_id=a.id, channel="hosted",
                       utm_source="google", form_id=form_a.id)

    # Moves: a1 MQL after 2 h, SQL, opportunity, customer; a2 MQL after 10 h, SQL, lost;
    # a3 MQL after 30 h, rejected (recycled); e1 MQL after 4 h, accepted; the old lead
    # (May) becomes an MQL on June 3; b1 goes straight from lead to SQL (skips MQL).
    moves = {
        "a1": [("mql", at(2, 12)), ("sql", at(3, 12)), ("opportunity", at(9)),
               ("customer", at(12))],
        "a2": [("mql", at(3, 20)), ("sql", at(5, 20)), ("lost", at(11))],
        "a3": [("mql", at(6, 16)), ("recycled", at(7))],
        "e1": [("mql", at(6, 14)), ("sql", at(6, 20))],
        "a_old": [("mql", at(3, 9))],
        "b1": [("sql", at(4, 15))],
    }
    decisions = {"a1": ("accepted", at(3, 12), ""), "a2": ("accepted", at(5, 20), ""),
                 "a3": ("recycled", at(7), "No budget this year"),
                 "e1": ("accepted", at(6, 20), "")}
    for key, steps in moves.items():
        for stage, when in steps:
            change = _move(L[key], stage, when, actor="scoring" if stage == "mql" else "user")
            if stage == "mql" and key in decisions:
                outcome, decided, reason = decisions[key]
                db.session.add(Assignment(lead_id=L[key].id, stage_change_id=change.id,
                                          user_id=user.id, method="round_robin",
                                          created_at=when, outcome=outcome, decided_at=decided,
                                          decided_by_id=user.id, decision_reason=reason))
    # The old lead's handoff waits for a decision.
    waiting = db.session.scalar(sa.select(StageChange).where(
        StageChange.lead_id == L["a_old"].id, StageChange.to_stage == "mql"))
    db.session.add(Assignment(lead_id=L["a_old"].id, stage_change_id=waiting.id,
                              user_id=user.id, method="round_robin", created_at=at(3, 9)))
    # Page visits by people: Alpha 40 in range (and 5 before), Beta 10; machines don't count.
    for n in range(40):
        record_event(None, "page_viewed", occurred_at=at(1 + n % 14, 8), campaign_id=a.id,
                     url="/p/alpha", flush=False)
    for n in range(5):
        record_event(None, "page_viewed", occurred_at=datetime(2026, 5, 25, tzinfo=UTC),
                     campaign_id=a.id, url="/p/alpha", flush=False)
    for n in range(10):
        record_event(None, "page_viewed", occurred_at=at(2 + n % 5, 8), campaign_id=b.id,
                     url="/p/beta", flush=False)
    for n in range(7):
        record_event(None, "page_viewed", occurred_at=at(4, 8), campaign_id=a.id,
                     url="/p/alpha", is_bot=True, bot_reason="scanner", flush=False)
    # a2 comes back and submits Alpha's form again: a repeat submission, not a new lead.
    record_event(L["a2"], "form_submitted", occurred_at=at(9), campaign_id=a.id,
                 data={"form_id": form_a.id, "new_lead": False, "channel": "hosted",
                       "utm": {"utm_source": "google"}})
    db.session.commit()
    return world

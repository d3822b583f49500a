"""Owner assignment: weighted round robin on working days, territories by country."""

import itertools
from datetime import UTC, datetime

import sqlalchemy as sa
import time_machine

from app.db import db
from app.leads.models import Event
from app.sales.handoff import on_mql
from app.sales.models import Assignment, SalesRep, Territory
from tests.app.sales.helpers import make_lead, make_mql, settings
from tests.helpers import make_user

_numbers = itertools.count()
WEDNESDAY = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)


def _hand_off(n: int, **values) -> list[str]:
    owners = []
    for i in range(n):
        lead = make_lead(f"lead{next(_numbers)}@example.com", **values)
        assignment = on_mql(make_mql(lead))
        db.session.commit()
        owners.append(assignment.user.email if assignment.user else None)
    return owners


def test_round_robin_follows_the_weights(app):
    ann = make_user("ann@example.com", "sales")
    make_user("bob@example.com", "sales")
    make_user("mia@example.com", "marketer")  # not sales: never assigned
    db.session.add(SalesRep(user_id=ann.id, weight=2, working_days=[0, 1, 2, 3, 4]))
    db.session.commit()
    with time_machine.travel(WEDNESDAY, tick=False):
        owners = _hand_off(6)
    assert owners.count("ann@example.com") == 4 and owners.count("bob@example.com") == 2
    events = db.session.scalars(sa.select(Event).where(Event.type == "owner_assigned")).all()
    assert len(events) == 6 and all("round robin" in e.data["reason"] for e in events)


def test_only_reps_working_today_and_inactive_users_never(app):
    make_user("weekday@example.com", "sales")
    weekend = make_user("weekend@example.com", "sales")
    gone = make_user("gone@example.com", "sales")
    gone.active = False
    db.session.add(SalesRep(user_id=weekend.id, weight=1, working_days=[5, 6]))
    db.session.commit()
    with time_machine.travel(SATURDAY, tick=False):
        assert _hand_off(2) == ["weekend@example.com"] * 2
    with time_machine.travel(WEDNESDAY, tick=False):
        assert _hand_off(2) == ["weekday@example.com"] * 2


def test_territory_by_country_then_round_robin(app):
    make_user("rr@example.com", "sales")
    de = make_user("de@example.com", "sales")
    db.session.add(Territory(country="DE", user_id=de.id))
    db.session.add(SalesRep(user_id=de.id, weight=0, working_days=[]))  # only territory leads
    db.session.commit()
    settings(assignment_mode="territory")
    assert _hand_off(2, country="DE") == ["de@example.com"] * 2
    assert _hand_off(1, country="FR") == ["rr@example.com"]
    methods = db.session.scalars(sa.select(Assignment.method).order_by(Assignment.id)).all()
    assert methods == ["territory", "territory", "round_robin"]


def test_an_existing_sales_owner_is_kept(app):
    make_user("ann@example.com", "sales")
    bob = make_user("bob@example.com", "sales")
    lead = make_lead(country="US")
    lead.owner_id = bob.id
    db.session.commit()
    assignment = on_mql(make_mql(lead))
    assert (assignment.user.email, assignment.method) == ("bob@example.com", "kept")

import pytest
import sqlalchemy as sa

from app.db import db
from app.leads.lifecycle import ForbiddenMove, allowed_moves, move
from app.leads.models import Stage, StageChange
from app.leads.service import upsert_lead


def _lead(stage: str):
    lead = upsert_lead("ann@example.com", source="test").lead
    lead.stage = stage
    db.session.commit()
    return lead


def test_sql_can_become_an_opportunity_with_the_reason_and_actor_kept(app):
    lead = _lead("sql")
    move(lead, "opportunity", reason="Demo booked", actor="user", actor_user_id=None)
    db.session.commit()
    change = db.session.scalars(sa.select(StageChange).order_by(StageChange.id.desc())).first()
    assert (change.from_stage, change.to_stage, change.reason, change.actor) == (
        "sql", "opportunity", "Demo booked", "user")


def test_a_forbidden_move_says_what_is_allowed_and_changes_nothing(app):
    lead = _lead("lead")
    with pytest.raises(ForbiddenMove, match="cannot move from Lead to Customer.*MQL"):
        move(lead, "customer", reason="wishful", actor="user")
    db.session.rollback()
    assert lead.stage == "lead"
    assert db.session.scalar(sa.select(sa.func.count(StageChange.id))) == 1  # creation only


def test_a_reason_is_required(app):
    lead = _lead("mql")
    with pytest.raises(ForbiddenMove, match="reason is required"):
        move(lead, "sql", reason="  ", actor="user")
    assert lead.stage == "mql"


def test_every_stage_has_a_way_out_and_lost_is_a_stage():
    assert Stage("lost").label == "Lost"
    for stage in Stage:
        assert allowed_moves(stage.value), stage

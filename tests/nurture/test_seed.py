"""The demo sequence: live, valid, made once."""

import sqlalchemy as sa

from app.db import db
from nurture.models import Sequence
from nurture.seed import seed_demo
from nurture.steps import activation_errors


def test_the_demo_sequence_is_live_and_valid(app):
    seed_demo()
    seed_demo()
    (sequence,) = db.session.scalars(sa.select(Sequence)).all()
    assert sequence.name == "Demo nurture" and sequence.status == "active"
    assert [s.kind for s in sequence.steps] == ["email", "wait", "branch", "email", "goal"]
    assert activation_errors(sequence) == []

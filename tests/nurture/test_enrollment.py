"""Who may be enrolled, and the database's guarantee of one live journey per lead."""

import pytest
from sqlalchemy.exc import IntegrityError

from app.db import db
from nurture.enrollment import end, enroll, refusal
from nurture.models import Enrollment
from nurture.suppression import suppress
from tests.nurture.factories import events, make_lead, make_sequence


def test_one_live_enrollment_per_lead_and_sequence(app):
    lead, sequence = make_lead(), make_sequence()
    assert enroll(lead.id, sequence.id, "test") is not None
    db.session.commit()
    assert enroll(lead.id, sequence.id, "test") is None
    assert refusal(lead, sequence) == "the lead is already in this sequence"
    assert len(events(lead.id, "nurture_enrolled")) == 1


def test_the_database_refuses_a_second_live_enrollment(app):
    lead, sequence = make_lead(), make_sequence()
    for _ in range(2):
        db.session.add(Enrollment(lead_id=lead.id, sequence_id=sequence.id, status="active"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_reenrollment_follows_the_sequence_policy(app):
    lead = make_lead()
    never = make_sequence(name="Never")
    again = make_sequence(name="Again", reenroll="after_finished")
    for sequence in (never, again):
        end(enroll(lead.id, sequence.id, "test"), "done", finished=True)
    db.session.commit()
    assert enroll(lead.id, never.id, "test") is None
    assert enroll(lead.id, again.id, "test") is not None


def test_suppressed_or_inactive_means_no_enrollment(app):
    lead = make_lead()
    draft = make_sequence(active=False)
    assert refusal(lead, draft) == "the sequence is not active"
    suppress(lead.email, "bounce", "test")
    assert refusal(lead, make_sequence()) == "the lead cannot be emailed (suppressed (bounce))"

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


def test_marking_a_lead_replied_ends_every_journey(app, client, auth):
    from nurture.models import Enrollment

    auth.login_as("marketer")
    lead = make_lead()
    first, second = make_sequence(name="First"), make_sequence(name="Second")
    ids = [enroll(lead.id, s.id, "test").id for s in (first, second)]
    db.session.commit()
    page = client.get(f"/admin/nurture/{first.id}/enrollments").get_data(as_text=True)
    from tests.helpers import csrf_from

    assert "Mark replied" in page
    response = client.post(f"/admin/nurture/enrollments/{ids[0]}/replied",
                           data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    db.session.expire_all()
    for enrollment_id in ids:
        enrollment = db.session.get(Enrollment, enrollment_id)
        assert (enrollment.status, enrollment.exit_reason) == ("exited", "replied")
    (event,) = events(lead.id, "email_replied")
    assert event.data == {"source": "marked by marketer@example.com"}

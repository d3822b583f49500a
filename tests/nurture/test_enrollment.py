"""Who may be enrolled, and the database's guarantee of one live journey per lead."""

import pytest
from sqlalchemy.exc import IntegrityError

from app.db import db
from nurture.enrollment import Wanted, end, enroll, enroll_many, refusal
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


def test_enrolling_many_at_once_follows_the_same_rules_as_one_by_one(app):
    from app.privacy import consent

    news = consent.define("product_news", "Product news", "Email me product news.")
    db.session.commit()
    welcome = make_sequence(name="Welcome")
    again = make_sequence(name="Again", reenroll="after_finished")
    needs = make_sequence(name="News", required_purpose_id=news.id)
    ann, bob, cat, dan = (make_lead(f"{name}@example.com") for name in ("ann", "bob", "cat", "dan"))
    suppress(bob.email, "bounce", "test")
    enroll(cat.id, welcome.id, "earlier")  # cat: already on Welcome
    end(enroll(dan.id, again.id, "earlier"), "done", finished=True)  # dan: finished Again
    consent.grant(ann, news, source="form")
    db.session.commit()
    asked = [Wanted(ann.id, welcome.id, "batch"), Wanted(ann.id, welcome.id, "batch"),
             Wanted(ann.id, needs.id, "batch"), Wanted(bob.id, welcome.id, "batch"),
             Wanted(cat.id, welcome.id, "batch"), Wanted(cat.id, needs.id, "batch"),
             Wanted(dan.id, again.id, "batch", campaign_id=None), Wanted(dan.id, welcome.id, "b")]
    expected = [refusal(db.session.get(type(ann), w.lead_id), db.session.get(type(welcome),
                                                                             w.sequence_id))
                for w in asked]
    assert expected == [None, None, None, "the lead cannot be emailed (suppressed (bounce))",
                        "the lead is already in this sequence",
                        "the lead has not agreed to “Product news”", None, None]

    made = enroll_many(asked)
    db.session.commit()

    enrolled = [w for w, e in zip(asked, made) if e is not None]
    # As one by one would: ann once on Welcome (asked twice), ann on News (she agreed), dan on
    # Again again (finished, re-enrolls) and on Welcome; nobody refused.
    assert [(w.lead_id, w.sequence_id) for w in enrolled] == [
        (ann.id, welcome.id), (ann.id, needs.id), (dan.id, again.id), (dan.id, welcome.id)]
    assert len(events(ann.id, "nurture_enrolled")) == 2
    (event,) = [e for e in events(dan.id, "nurture_enrolled") if e.data["source"] == "b"]
    assert event.data["enrollment_id"] == made[-1].id and event.data["sequence"] == "Welcome"
    assert all(refusal(db.session.get(type(ann), w.lead_id),
                       db.session.get(type(welcome), w.sequence_id))
               == "the lead is already in this sequence" for w in enrolled)


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

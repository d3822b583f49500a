"""Jobs: a form submission enrolls the lead and starts the first email at once."""

import sqlalchemy as sa

from app import queue
from app.db import db
from nurture import jobs
from tests.helpers import outbox_files
from tests.nurture.factories import drain, enrollment_of, make_lead, make_sequence


def _submission(lead, status="accepted"):
    from forms.models import Form, Submission

    form = Form(name="Guide form")
    db.session.add(form)
    db.session.flush()
    submission = Submission(form_id=form.id, lead_id=lead.id, status=status, email=lead.email)
    db.session.add(submission)
    db.session.commit()
    return form, submission


def test_a_submission_enrolls_in_every_sequence_its_form_triggers(app):
    lead = make_lead()
    form, submission = _submission(lead)
    triggered = make_sequence(name="Triggered", trigger_form_id=form.id)
    make_sequence(name="Other")
    make_sequence(name="Draft", trigger_form_id=form.id, active=False)

    (_enrollment_id,) = jobs.enroll_from_submission(submission.id)
    assert enrollment_of(lead.id).sequence_id == triggered.id
    assert queue.get_queue("mail").count == 1  # the first step is queued, not left to the tick
    assert jobs.enroll_from_submission(submission.id) == []  # delivered twice: no second one
    drain()
    assert len(outbox_files()) == 1


def test_a_batch_of_submissions_enrolls_each_lead_once_however_often_it_runs(app):
    from forms.models import Submission
    from nurture.models import Enrollment

    ann, bob = make_lead(), make_lead("bob@example.com")
    form, first = _submission(ann)
    again = Submission(form_id=form.id, lead_id=ann.id, status="accepted", email=ann.email)
    bobs = Submission(form_id=form.id, lead_id=bob.id, status="accepted", email=bob.email)
    held = Submission(form_id=form.id, lead_id=bob.id, status="quarantined", email=bob.email)
    db.session.add_all([again, bobs, held])
    db.session.commit()
    welcome = make_sequence(name="Welcome", trigger_form_id=form.id)
    tips = make_sequence(name="Tips", trigger_form_id=form.id)
    batch = [first.id, again.id, bobs.id, held.id]

    assert len(jobs.enroll_from_submissions(batch)) == 4  # two leads on two sequences
    assert queue.get_queue("mail").count == 1  # their first steps, in one chunk, at once
    assert jobs.enroll_from_submissions(batch) == []  # redelivered: nothing twice
    assert jobs.enroll_from_submissions(list(reversed(batch))) == []
    made = sorted(db.session.execute(sa.select(Enrollment.lead_id, Enrollment.sequence_id)).all())
    assert made == sorted([(ann.id, welcome.id), (ann.id, tips.id), (bob.id, welcome.id),
                           (bob.id, tips.id)])


def test_an_enrollment_another_writer_made_meanwhile_is_skipped_not_the_batch(app, monkeypatch):
    """Two deliveries at once both pass `enroll`'s check: the unique index refuses the second's
    enrollment, and only that one is skipped."""
    from nurture import enrollment
    from nurture.models import Enrollment

    ann, bob = make_lead(), make_lead("bob@example.com")
    form, first = _submission(ann)
    make_sequence(trigger_form_id=form.id)
    assert len(jobs.enroll_from_submissions([first.id])) == 1
    from forms.models import Submission

    bobs = Submission(form_id=form.id, lead_id=bob.id, status="accepted", email=bob.email)
    db.session.add(bobs)
    db.session.commit()
    monkeypatch.setattr(enrollment, "refusal", lambda lead, sequence: None)  # the race
    assert len(jobs.enroll_from_submissions([first.id, bobs.id])) == 1  # bob's only
    assert sorted(db.session.scalars(sa.select(Enrollment.lead_id))) == [ann.id, bob.id]


def test_a_quarantined_submission_enrolls_nobody(app):
    lead = make_lead()
    form, submission = _submission(lead, status="quarantined")
    make_sequence(trigger_form_id=form.id)
    assert jobs.enroll_from_submission(submission.id) == []


def test_the_listener_and_the_tick_are_registered(app):
    from app.schedule import periodic_jobs

    assert "nurture.jobs.enroll_from_submissions" in app.extensions["submission_listeners"]
    assert "nurture.jobs.tick" in [p.job for p in periodic_jobs(app)]

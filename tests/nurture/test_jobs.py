"""Jobs: a form submission enrolls the lead and starts the first email at once."""

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


def test_a_quarantined_submission_enrolls_nobody(app):
    lead = make_lead()
    form, submission = _submission(lead, status="quarantined")
    make_sequence(trigger_form_id=form.id)
    assert jobs.enroll_from_submission(submission.id) == []


def test_the_listener_and_the_tick_are_registered(app):
    from app.schedule import periodic_jobs

    assert "nurture.jobs.enroll_from_submission" in app.extensions["submission_listeners"]
    assert "nurture.jobs.tick" in [p.job for p in periodic_jobs(app)]

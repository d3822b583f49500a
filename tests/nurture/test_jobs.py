"""Jobs: a form submission enrolls the lead and starts the first email at once."""

import time

import sqlalchemy as sa

from app import queue
from app.db import db
from nurture import engine, jobs
from tests.helpers import outbox_files
from tests.nurture.factories import drain, enrollment_of, make_lead, make_sequence, sends


def stand_in_for_asset_emails(path: str) -> None:
    """An RQ job on the mail queue (the asset emails of earlier submits): notes when it ran."""
    with open(path, "w") as fh:
        fh.write(str(time.time()))


def test_the_first_email_of_a_submit_goes_before_the_mail_queued_ahead_of_it(app, tmp_path):
    """At a steady stream of submits the asset emails fill the mail queue; a new lead's first
    nurture email must not wait behind them (workers take FIRST_STEPS_QUEUE first)."""
    lead = make_lead()
    form, submission = _submission(lead)
    make_sequence(name="Triggered", trigger_form_id=form.id)
    marker = tmp_path / "asset-emails-ran"
    queue.enqueue(f"{__name__}.stand_in_for_asset_emails", str(marker), queue="mail")
    jobs.enroll_from_submission(submission.id)
    drain()
    (send,) = sends()
    assert send.sent_at is not None
    assert send.sent_at.timestamp() < float(marker.read_text())


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
    # The first step is queued, not left to the tick, ahead of other mail.
    assert queue.get_queue(engine.FIRST_STEPS_QUEUE).count == 1
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
    assert queue.get_queue(engine.FIRST_STEPS_QUEUE).count == 1  # in one chunk, at once
    assert jobs.enroll_from_submissions(batch) == []  # redelivered: nothing twice
    assert jobs.enroll_from_submissions(list(reversed(batch))) == []
    made = sorted(db.session.execute(sa.select(Enrollment.lead_id, Enrollment.sequence_id)).all())
    assert made == sorted([(ann.id, welcome.id), (ann.id, tips.id), (bob.id, welcome.id),
                           (bob.id, tips.id)])


def test_an_enrollment_another_writer_made_meanwhile_is_skipped_not_the_batch(app, monkeypatch):
    """Two deliveries at once both pass the rules' check: the unique index refuses the batch,
    which is then enrolled one by one, and only the enrollment made meanwhile is skipped."""
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
    monkeypatch.setattr(enrollment, "_refusal", lambda *args: None)  # the race
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

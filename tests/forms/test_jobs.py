"""The forms jobs: they take ids, and running them twice does no harm."""

from datetime import timedelta

import time_machine

from app.db import db, utcnow
from forms import jobs
from tests.forms.support import submissions
from tests.helpers import outbox_files


def test_confirmation_is_sent_only_while_a_submission_waits_for_it(page, make_form):
    form = make_form(double_opt_in=True)
    page.post(form, {"email": "ann@example.com"})
    (submission,) = submissions()
    assert jobs.send_confirmation(submission.id)
    submission.status = "accepted"
    db.session.commit()
    assert jobs.send_confirmation(submission.id) is None
    assert jobs.send_confirmation(99999) is None
    assert len(outbox_files()) == 1


def test_expiry_respects_each_forms_own_window(page, make_form):
    short = make_form("Short", double_opt_in=True, confirmation_expiry_hours=1)
    long = make_form("Long", double_opt_in=True, confirmation_expiry_hours=48)
    page.post(short, {"email": "ann@example.com"})
    page.post(long, {"email": "bob@example.com"})
    with time_machine.travel(utcnow() + timedelta(hours=2)):
        assert jobs.expire_confirmations() == 1
    assert [s.status for s in submissions()] == ["expired", "pending_confirmation"]


def test_expiry_is_a_periodic_job(app):
    from app.schedule import periodic_jobs

    assert "forms.jobs.expire_confirmations" in [p.job for p in periodic_jobs(app)]

"""The pipeline: one transaction from valid data to lead, submission, event and outbox rows."""

import sqlalchemy as sa

from app.db import db
from app.outbox import OutboxJob
from forms import pipeline
from tests.forms.support import LISTENER, events, leads


def _data(**values):
    return {"email": "ann@example.com", "first_name": "Ann", **values}


def test_accept_writes_everything_in_one_commit(app, make_form):
    pipeline.add_submission_listener(app, LISTENER)
    pipeline.add_submission_listener(app, LISTENER)  # registering twice is harmless
    form = make_form()
    result = pipeline.accept(form, _data(), _data(csrf_token="x", ts="y"),
                             pipeline.Context(channel="import", utm_defaults={"utm_source": "ads"}))
    (lead,) = leads()
    assert result.lead.id == lead.id and not result.duplicate
    assert result.submission.raw == _data()  # secrets are not kept
    assert result.submission.utm == {"utm_source": "ads"}
    (event,) = events("form_submitted")
    assert event.data["new_lead"] is True and event.data["channel"] == "import"
    jobs = db.session.scalars(sa.select(OutboxJob.job)).all()
    assert jobs.count(LISTENER) == 1  # once, beside the other packages' listeners


def test_quarantine_keeps_the_post_and_nothing_else(app, make_form):
    form = make_form()
    result = pipeline.quarantine(form, _data(), _data(), pipeline.Context(),
                                 "honeypot field filled")
    assert result.lead is None and result.submission.status == "quarantined"
    assert leads() == [] and events() == []
    assert db.session.scalars(sa.select(OutboxJob)).all() == []

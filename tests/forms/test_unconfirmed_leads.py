"""A double opt-in lead who has not confirmed is not a lead sales should see (issue 15, finding
9): however hot their activity, scoring does not move them to MQL (one by one or in a rebuild),
so no owner and no alert, and the qualified-leads export leaves them out. Confirming lets them
qualify like anyone else."""

from __future__ import annotations

import sqlalchemy as sa
import time_machine

from app.db import db
from app.leads.models import Lead, Stage
from app.sales import export
from app.sales.models import Alert, Assignment
from forms import jobs
from nurture.scoring import service
from tests.forms.support import submissions
from tests.helpers import csrf_from, outbox_files
from tests.nurture.scoring.support import DIRECTOR, NOW, add_events, hot_activity


def _hot_unconfirmed_lead(page, make_form) -> Lead:
    form = make_form(double_opt_in=True)
    assert page.post(form, {"email": "dana@acme.example.com"}).status_code == 201
    lead = db.session.scalar(sa.select(Lead))
    for name, value in DIRECTOR.items():
        setattr(lead, name, value)
    add_events(lead, *hot_activity())
    return lead


def _exported() -> list[str]:
    return [row.email for row in db.session.execute(export.statement(export.Filters()))]


def test_an_unconfirmed_lead_is_not_scored_to_mql_alerted_or_exported(page, make_form):
    with time_machine.travel(NOW, tick=False):
        lead = _hot_unconfirmed_lead(page, make_form)
        assessment = service.score_lead(lead.id)
        db.session.commit()
        assert assessment is not None and assessment.mql_reason  # hot enough, but
        db.session.expire_all()
        assert db.session.get(Lead, lead.id).stage == Stage.LEAD.value
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Assignment)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0

        # Even moved to MQL by hand, the export of qualified leads leaves them out.
        lead = db.session.get(Lead, lead.id)
        lead.stage = Stage.MQL.value
        db.session.commit()
        assert _exported() == []
        lead.stage = Stage.LEAD.value
        db.session.commit()


def test_a_rebuild_does_not_qualify_an_unconfirmed_lead(page, make_form, runner):
    with time_machine.travel(NOW, tick=False):
        lead = _hot_unconfirmed_lead(page, make_form)
        result = runner.invoke(args=["scores", "rebuild"])
        assert result.exit_code == 0, result.output
        db.session.expire_all()
        assert db.session.get(Lead, lead.id).stage == Stage.LEAD.value


def test_confirming_lets_the_lead_qualify(page, make_form):
    with time_machine.travel(NOW, tick=False):
        lead = _hot_unconfirmed_lead(page, make_form)
        (submission,) = submissions()
        jobs.send_confirmation(submission.id)
        (eml,) = outbox_files()
        link = "/confirm/" + eml.read_text().split("/confirm/", 1)[1].split()[0].split('"')[0]
        shown = page.client.get(link)
        page.client.post(link, data={"csrf_token": csrf_from(shown.get_data(as_text=True))})
        service.score_lead(lead.id)
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(Lead, lead.id).stage == Stage.MQL.value
        assert _exported() == ["dana@acme.example.com"]

"""Stage changes reach the journeys at once: goals and exits end them, a stage can enroll."""

import sqlalchemy as sa

from app.db import db
from app.leads.service import change_stage
from app.outbox import OutboxJob
from nurture.enrollment import enroll
from tests.nurture.factories import (
    email_step,
    enrollment_of,
    make_lead,
    make_sequence,
    sends,
    wait_step,
    work,
)


def _run_stage_listeners():
    from app import outbox

    for row in db.session.scalars(sa.select(OutboxJob).where(
            OutboxJob.job == "nurture.jobs.on_stage_change", OutboxJob.done_at.is_(None))).all():
        outbox.run(row.id)
    db.session.expire_all()


def test_reaching_an_exit_stage_ends_the_journey_before_its_next_email(app):
    lead = make_lead()
    sequence = make_sequence(email_step(), wait_step(86400), email_step(subject="Second"),
                             exit_stages=["sql"])
    enroll(lead.id, sequence.id, "test")
    work()
    assert len(sends()) == 1
    change_stage(lead, "mql", reason="test")
    change_stage(lead, "sql", reason="accepted", actor="user")
    db.session.commit()
    _run_stage_listeners()
    enrollment = enrollment_of(lead.id)
    assert enrollment.status == "exited"
    assert enrollment.exit_reason == "reached the exit stage sql"


def test_recycled_leads_enter_the_recycling_sequence(app):
    lead = make_lead()
    recycling = make_sequence(email_step(subject="Still interested?"), name="Recycle",
                              trigger_stage="recycled")
    change_stage(lead, "recycled", reason="not ready yet", actor="user")
    db.session.commit()
    _run_stage_listeners()
    enrollment = enrollment_of(lead.id)
    assert enrollment is not None and enrollment.sequence_id == recycling.id
    assert enrollment.source == "entered stage recycled"
    work()
    assert [s.subject for s in sends()] == ["Still interested?"]


def test_another_stage_enrolls_nobody(app):
    lead = make_lead()
    make_sequence(email_step(), name="Recycle", trigger_stage="recycled")
    change_stage(lead, "disqualified", reason="student", actor="user")
    db.session.commit()
    _run_stage_listeners()
    assert enrollment_of(lead.id) is None

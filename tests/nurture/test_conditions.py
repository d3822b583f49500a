"""Branch conditions read the database, and only what people did counts: a link scanner's click or
a privacy proxy's open never sends a lead down the 'yes' path."""

from datetime import timedelta

import time_machine

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import change_stage, record_event
from nurture import conditions, engine
from nurture.enrollment import enroll
from nurture.models import Condition, StepKind
from tests.nurture.factories import (
    drain,
    email_step,
    enrollment_of,
    make_lead,
    make_sequence,
    sends,
    wait_step,
    work,
)


def _after_first_email(lead, *, yes_no: bool = False):
    """A lead who got email 1 and now waits an hour before a 'clicked?' branch."""
    sequence = make_sequence(email_step(), wait_step(3600),
                             {"kind": StepKind.BRANCH, "condition": "clicked_previous"},
                             email_step(subject="Clicked"), email_step(subject="Did not click"),
                             active=False)
    branch, clicked, not_clicked = sequence.steps[2:]
    if yes_no:
        branch.yes_step_id, branch.no_step_id = clicked.id, not_clicked.id
    from nurture.steps import activate

    assert activate(sequence) == []
    enrollment = enroll(lead.id, sequence.id, "test")
    db.session.commit()
    engine.kick([enrollment.id])
    drain()
    (send,) = sends()
    return sequence, send


def _event(lead_id: int, type: str, send_id: int, *, bot: str | None = None) -> None:
    record_event(db.session.get(Lead, lead_id), type, data={"send_id": str(send_id)},
                 is_bot=bot is not None, bot_reason=bot)
    db.session.commit()


def _answers(sequence, lead_id: int) -> dict[str, bool]:
    branch = sequence.steps[2]
    enrollment = enrollment_of(lead_id)
    out = {}
    for condition in (Condition.CLICKED_PREVIOUS, Condition.OPENED_PREVIOUS):
        branch.condition = condition.value
        out[condition.value] = conditions.evaluate(branch, enrollment)
    db.session.rollback()
    return out


def test_machine_opens_and_clicks_do_not_count(app):
    lead = make_lead()
    sequence, send = _after_first_email(lead)
    _event(lead.id, "email_clicked", send.id, bot="link scanner: Proofpoint")
    _event(lead.id, "email_opened", send.id, bot="Apple Mail privacy proxy")
    assert _answers(sequence, lead.id) == {"clicked_previous": False, "opened_previous": False}

    _event(lead.id, "email_opened", send.id)
    assert _answers(sequence, lead.id) == {"clicked_previous": False, "opened_previous": True}


def test_a_human_click_counts_as_an_open_too(app):
    lead = make_lead()
    sequence, send = _after_first_email(lead)
    _event(lead.id, "email_clicked", send.id)
    assert _answers(sequence, lead.id) == {"clicked_previous": True, "opened_previous": True}


def test_a_click_on_another_email_does_not_count(app):
    lead = make_lead()
    sequence, send = _after_first_email(lead)
    _event(lead.id, "email_clicked", send.id + 1000)
    assert _answers(sequence, lead.id)["clicked_previous"] is False


def test_a_scanner_click_takes_the_no_path(app):
    lead = make_lead()
    _, send = _after_first_email(lead, yes_no=True)
    _event(lead.id, "email_clicked", send.id, bot="link scanner: Mimecast")
    with time_machine.travel(utcnow() + timedelta(hours=1, seconds=5)):
        work()
    assert [s.subject for s in sends()] == ["Hello {{ lead.first_name }}", "Did not click"]


def test_a_human_click_takes_the_yes_path(app):
    lead = make_lead()
    _, send = _after_first_email(lead, yes_no=True)
    _event(lead.id, "email_clicked", send.id)
    with time_machine.travel(utcnow() + timedelta(hours=1, seconds=5)):
        work()
    assert [s.subject for s in sends()][:2] == ["Hello {{ lead.first_name }}", "Clicked"]


def test_visits_score_fields_and_stages(app):
    lead = make_lead(company="Acme")
    sequence, _ = _after_first_email(lead)
    branch, enrollment = sequence.steps[2], enrollment_of(lead.id)
    record_event(db.session.get(Lead, lead.id), "page_viewed", url="https://ex.com/pricing",
                 is_bot=True, bot_reason="crawler")
    db.session.commit()

    def answer(condition: Condition, **params) -> bool:
        branch.condition, branch.params = condition.value, params
        return conditions.evaluate(branch, enrollment)

    assert answer(Condition.VISITED_URL_PATTERN, pattern="*/pricing*") is False  # a bot
    record_event(db.session.get(Lead, lead.id), "page_viewed", url="https://ex.com/pricing")
    assert answer(Condition.VISITED_URL_PATTERN, pattern="*/pricing*") is True
    assert answer(Condition.FIELD_EQUALS, field="company", value=" acme ") is True
    assert answer(Condition.FIELD_EQUALS, field="company", value="Other") is False
    assert answer(Condition.SCORE_AT_LEAST, score=1) is False
    assert answer(Condition.IN_STAGE, stages=["mql"]) is False
    change_stage(db.session.get(Lead, lead.id), "mql", reason="test")
    assert answer(Condition.IN_STAGE, stages=["mql"]) is True
    db.session.rollback()

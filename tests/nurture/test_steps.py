"""Activation refuses a sequence that would send something broken, and says why."""

from nurture import engine
from nurture.enrollment import enroll
from nurture.models import StepKind
from nurture.steps import activate, activation_errors, add_step, move_step, remove_step
from tests.helpers import outbox_files
from tests.nurture.factories import email_step, make_lead, make_sequence, wait_step


def test_a_broken_template_blocks_activation_and_nothing_is_sent(app):
    sequence = make_sequence(email_step(body="Hi {{ ''.__class__ }}"), active=False)
    (error,) = activate(sequence)
    assert error.startswith("Step 1 (Email: Hello {{ lead.first_name }}): Body: not allowed")
    assert sequence.status == "draft"
    assert enroll(make_lead().id, sequence.id, "test") is None
    assert engine.tick() == 0 and outbox_files() == []


def test_activation_needs_a_postal_address_and_a_sender(app):
    app.config.update(POSTAL_ADDRESS="", MAIL_FROM="")
    errors = activation_errors(make_sequence(active=False))
    assert errors == ["POSTAL_ADDRESS is not set: every email must carry a postal address.",
                      "MAIL_FROM is not set: emails need a sender."]


def test_a_workspace_sending_pause_blocks_activation_until_lifted(app):
    from app.db import db
    from nurture.tracking import health

    sequence = make_sequence(email_step(), active=False)
    health.pause("Spam reports at 0.40% of delivered email in 24 hours (4 of 1000)", 0.004)
    db.session.commit()
    (error,) = activate(sequence)
    assert error.startswith("Sending is paused for the whole workspace (Spam reports at 0.40%")
    assert sequence.status == "draft"
    health.lift(health.sending_paused(), by="marketer@example.com")
    db.session.commit()
    assert activate(sequence) == [] and sequence.status == "active"


def test_waits_branches_and_goals_are_checked(app):
    sequence = make_sequence(email_step(), wait_step(0), active=False)
    branch = add_step(sequence, StepKind.BRANCH, condition="clicked_previous")
    goal = add_step(sequence, StepKind.GOAL)
    branch.yes_step_id = sequence.steps[0].id
    assert activation_errors(sequence) == [
        "Step 2 (Wait 0 seconds): A wait needs a duration or a 'next <weekday> <HH:MM>'.",
        "Step 3 (Branch: clicked previous): The 'yes' path must go to a later step.",
        "Step 4 (Goal: ): A goal needs at least one stage.",
    ]
    branch.yes_step_id = goal.id
    goal.goal_stages = ["mql"]
    sequence.steps[1].wait_until = "next friday 10:30"
    assert activation_errors(sequence) == []


def test_moving_and_removing_steps_keeps_order_and_branches_sound(app):
    sequence = make_sequence(email_step(subject="A"), wait_step(), email_step(subject="C"),
                             active=False)
    _a, _wait, c = sequence.steps
    move_step(c, -1)
    assert [s.subject or "wait" for s in sorted(sequence.steps, key=lambda s: s.position)] \
        == ["A", "C", "wait"]
    branch = add_step(sequence, StepKind.BRANCH, condition="opened_previous")
    end = add_step(sequence, StepKind.EMAIL, subject="D", body="x")
    branch.no_step_id = end.id
    remove_step(end)
    assert branch.no_step_id is None
    assert sorted(s.position for s in sequence.steps) == [0, 1, 2, 3]

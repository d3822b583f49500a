"""Demo data: an active sequence a newcomer can watch send after `make run`."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from app.db import db
from nurture.models import ALL_DAYS, Condition, Sequence, SequenceStatus, StepKind
from nurture.steps import add_step

DEMO_NAME = "Demo nurture"

WELCOME = """Hi {{ lead.first_name or "there" }},

Thanks for downloading our guide{% if lead.company %} for {{ lead.company }}{% endif %}.
Here are [three ideas to try this week](https://example.com/ideas).

The Kindling team"""

FOLLOW_UP = """Hi {{ lead.first_name or "there" }},

Glad the ideas were useful. Would a **15-minute call** help you put them to work?
[Pick a time](https://example.com/meet)."""


def seed_demo() -> list[str]:
    """Runs after the forms and campaigns seeders, so their demo form can trigger it."""
    sequence = db.session.scalar(sa.select(Sequence).where(Sequence.name == DEMO_NAME))
    if sequence is None:
        sequence = Sequence(name=DEMO_NAME, window_days=list(ALL_DAYS), window_start_hour=0,
                            window_end_hour=24, timezone="UTC", frequency_cap_hours=0,
                            exit_stages=["sql", "customer", "disqualified"])
        db.session.add(sequence)
        db.session.flush()
        add_step(sequence, StepKind.EMAIL, subject="Your guide, {{ lead.first_name }}",
                 body=WELCOME)
        add_step(sequence, StepKind.WAIT, wait_seconds=86400)
        branch = add_step(sequence, StepKind.BRANCH, condition=Condition.CLICKED_PREVIOUS.value)
        follow_up = add_step(sequence, StepKind.EMAIL, subject="A quick call?", body=FOLLOW_UP)
        goal = add_step(sequence, StepKind.GOAL)
        goal.goal_stages = ["mql"]
        branch.yes_step_id = follow_up.id
        branch.no_step_id = goal.id
        sequence.status = SequenceStatus.ACTIVE.value
    sequence.trigger_form_id = sequence.trigger_form_id or _demo_form_id()
    db.session.commit()
    base = current_app.config["BASE_URL"]
    return [f"Nurture: “{DEMO_NAME}” ({sequence.status}) at {base}/admin/nurture/{sequence.id}"]


def _demo_form_id() -> int | None:
    from forms.models import Form

    return db.session.scalar(sa.select(Form.id).where(Form.name == "Demo guide form"))

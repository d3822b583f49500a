"""Editing a sequence: its steps in order, what each needs to be valid, and activation.

Branches may only jump forward (to a later step), so no journey can loop.
"""

from __future__ import annotations

from flask import current_app

from app.db import db
from app.leads.models import Stage
from nurture.models import Condition, Sequence, SequenceStatus, Step, StepKind
from nurture.timing import parse_wait_until

STAGE_VALUES = {s.value for s in Stage}


def following(step: Step) -> Step | None:
    """The step after `step` in the sequence's order, None at the end."""
    return next_in(step.sequence.steps, step)


def next_in(steps: list[Step], step: Step) -> Step | None:
    """The step after `step` among `steps` (its sequence's), None at the end."""
    later = [s for s in steps if s.position > step.position]
    return min(later, key=lambda s: s.position) if later else None


def renumber(sequence: Sequence) -> None:
    for index, step in enumerate(sorted(sequence.steps, key=lambda s: (s.position, s.id or 0))):
        step.position = index


def add_step(sequence: Sequence, kind: StepKind | str, **values) -> Step:
    values.setdefault("params", {})
    values.setdefault("goal_stages", [])
    step = Step(kind=StepKind(kind).value, position=len(sequence.steps), **values)
    sequence.steps.append(step)
    db.session.flush()
    return step


def move_step(step: Step, offset: int) -> None:
    ordered = sorted(step.sequence.steps, key=lambda s: s.position)
    index = ordered.index(step)
    target = max(0, min(len(ordered) - 1, index + offset))
    ordered.insert(target, ordered.pop(index))
    for position, item in enumerate(ordered):
        item.position = position


def remove_step(step: Step) -> None:
    """Remove a step; branches that pointed at it fall back to 'the next step'."""
    sequence = step.sequence
    for other in sequence.steps:
        if other.yes_step_id == step.id:
            other.yes_step_id = None
        if other.no_step_id == step.id:
            other.no_step_id = None
    sequence.steps.remove(step)
    db.session.flush()
    renumber(sequence)


def structural_errors(step: Step) -> list[str]:
    """Errors of wait, branch and goal steps (email steps: see nurture.render.validate)."""
    errors: list[str] = []
    if step.kind == StepKind.WAIT.value:
        if step.wait_until:
            if parse_wait_until(step.wait_until) is None:
                errors.append("Write the wait as 'next <weekday> <HH:MM>', e.g. 'next tuesday "
                              "09:00'.")
        elif not step.wait_seconds or step.wait_seconds <= 0:
            errors.append("A wait needs a duration or a 'next <weekday> <HH:MM>'.")
    elif step.kind == StepKind.BRANCH.value:
        errors.extend(_branch_errors(step))
    elif step.kind == StepKind.GOAL.value:
        if not step.goal_stages:
            errors.append("A goal needs at least one stage.")
        unknown = [s for s in step.goal_stages or [] if s not in STAGE_VALUES]
        if unknown:
            errors.append(f"Unknown stage(s): {', '.join(unknown)}.")
    return errors


def _branch_errors(step: Step) -> list[str]:
    errors: list[str] = []
    params = step.params or {}
    try:
        condition = Condition(step.condition)
    except ValueError:
        return ["Choose a condition for the branch."]
    if condition is Condition.VISITED_URL_PATTERN and not params.get("pattern"):
        errors.append("Give the URL pattern to look for, e.g. */pricing*.")
    if condition is Condition.SCORE_AT_LEAST and not isinstance(params.get("score"), int):
        errors.append("Give the score to reach (a whole number).")
    if condition is Condition.FIELD_EQUALS and not params.get("field"):
        errors.append("Give the field to compare.")
    if condition is Condition.IN_STAGE and not params.get("stages"):
        errors.append("Choose at least one stage.")
    if condition in (Condition.OPENED_PREVIOUS, Condition.CLICKED_PREVIOUS):
        earlier = [s for s in step.sequence.steps
                   if s.kind == StepKind.EMAIL.value and s.position < step.position]
        if not earlier:
            errors.append("There is no email before this branch to have been opened or clicked.")
    by_id = {s.id: s for s in step.sequence.steps}
    for label, target_id in (("yes", step.yes_step_id), ("no", step.no_step_id)):
        if target_id is None:
            continue
        target = by_id.get(target_id)
        if target is None:
            errors.append(f"The '{label}' path goes to a step that no longer exists.")
        elif target.position <= step.position:
            errors.append(f"The '{label}' path must go to a later step.")
    return errors


def activation_errors(sequence: Sequence) -> list[str]:
    """Everything that stops a sequence from going live; [] when it may."""
    from nurture.render import validate

    errors = []
    config = current_app.config
    if not (config.get("POSTAL_ADDRESS") or "").strip():
        errors.append("POSTAL_ADDRESS is not set: every email must carry a postal address.")
    if not (config.get("MAIL_FROM") or "").strip():
        errors.append("MAIL_FROM is not set: emails need a sender.")
    from nurture.tracking.health import sending_paused

    pause = sending_paused()
    if pause is not None:
        errors.append(f"Sending is paused for the whole workspace ({pause.reason}); resume it "
                      "on the Tracking page first.")
    if not sequence.steps:
        errors.append("The sequence has no steps.")
    elif not any(s.kind == StepKind.EMAIL.value for s in sequence.steps):
        errors.append("The sequence sends no email.")
    days = sequence.window_days or []
    if not days or not 0 <= sequence.window_start_hour < sequence.window_end_hour <= 24:
        errors.append("The send window never opens: choose days and a start hour before the "
                      "end hour.")
    for step in sorted(sequence.steps, key=lambda s: s.position):
        errors.extend(f"Step {step.position + 1} ({step.label}): {message}"
                      for message in validate(step))
    return errors


def activate(sequence: Sequence) -> list[str]:
    """Make the sequence live unless something is wrong; returns what is wrong."""
    errors = activation_errors(sequence)
    if not errors:
        sequence.status = SequenceStatus.ACTIVE.value
    return errors

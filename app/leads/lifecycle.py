"""Which stage moves the lifecycle allows, and moving a lead with a reason.

Scoring (lead → MQL), the sales handoff (MQL → SQL or recycled) and outcomes from the CRM
(→ opportunity, customer, lost) all end in `app.leads.service.change_stage`. A move asked for by
a person or another system goes through `move`, which refuses what the lifecycle forbids with a
message that says what is allowed instead.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

from app.auth.models import User
from app.leads.models import Lead, Stage, StageChange
from app.leads.service import change_stage

# `guard(lead, user, target)`: why this person may not make this move, or None (a package's
# rule the lifecycle does not know: sales keeps a waiting handoff's decision to its owner).
MoveGuard = Callable[[Lead, User, Stage], "str | None"]


def add_move_guard(app: Flask, guard: MoveGuard) -> None:
    app.extensions.setdefault("stage_move_guards", []).append(guard)

S = Stage
# From a stage (key) to the stages a person, the API or the CRM may move a lead to.
ALLOWED: dict[Stage, frozenset[Stage]] = {
    S.SUBSCRIBER: frozenset({S.LEAD, S.MQL, S.SQL, S.DISQUALIFIED}),
    S.LEAD: frozenset({S.SUBSCRIBER, S.MQL, S.SQL, S.RECYCLED, S.DISQUALIFIED}),
    S.MQL: frozenset({S.SQL, S.RECYCLED, S.DISQUALIFIED, S.LEAD}),
    S.SQL: frozenset({S.OPPORTUNITY, S.CUSTOMER, S.LOST, S.RECYCLED, S.DISQUALIFIED}),
    S.OPPORTUNITY: frozenset({S.CUSTOMER, S.LOST, S.RECYCLED, S.SQL}),
    S.CUSTOMER: frozenset({S.LOST}),  # churned, or a deal marked won by mistake
    S.LOST: frozenset({S.OPPORTUNITY, S.CUSTOMER, S.RECYCLED, S.SQL}),  # reopened and won
    S.RECYCLED: frozenset({S.LEAD, S.MQL, S.SQL, S.DISQUALIFIED}),
    S.DISQUALIFIED: frozenset({S.LEAD, S.RECYCLED}),
}


class ForbiddenMove(ValueError):
    """The lifecycle does not allow this move; the message says what it does allow."""


def allowed_moves(stage: str) -> list[Stage]:
    """The stages a lead at `stage` may be moved to, in lifecycle order."""
    targets = ALLOWED.get(Stage(stage), frozenset())
    return [s for s in Stage if s in targets]


def check_move(lead: Lead, to: Stage | str) -> Stage:
    """The target stage, or ForbiddenMove with a message a person can act on."""
    try:
        target = Stage(to)
    except ValueError:
        raise ForbiddenMove(f"“{to}” is not a stage.") from None
    current = Stage(lead.stage)
    if target == current:
        raise ForbiddenMove(f"The lead is already {current.label}.")
    if target not in ALLOWED.get(current, frozenset()):
        options = ", ".join(s.label for s in allowed_moves(current.value)) or "none"
        raise ForbiddenMove(f"A lead cannot move from {current.label} to {target.label}. "
                            f"From {current.label} it can move to: {options}.")
    return target


def move(lead: Lead, to: Stage | str, *, reason: str, actor: str,
         actor_user_id: int | None = None, by: User | None = None) -> StageChange:
    """Move `lead` as a person or another system asked, with a required reason. Does not commit.

    Raises ForbiddenMove (nothing changed) for a move the lifecycle forbids, a blank reason,
    or one that a guard refuses the person `by` (a user acting in the admin)."""
    target = check_move(lead, to)
    if not (reason or "").strip():
        raise ForbiddenMove("Say why the lead is moving: a reason is required.")
    for guard in current_app.extensions.get("stage_move_guards", []) if by is not None else []:
        refused = guard(lead, by, target)
        if refused:
            raise ForbiddenMove(refused)
    change = change_stage(lead, target, reason=reason.strip(), actor=actor,
                          actor_user_id=actor_user_id)
    assert change is not None  # check_move refused a move to the current stage
    return change

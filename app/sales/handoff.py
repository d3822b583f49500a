"""The handoff itself: a lead became MQL → an owner → an alert. And the decision on it."""

from __future__ import annotations

import sqlalchemy as sa

from app.auth.models import Role, User
from app.db import db, rows_matched, utcnow
from app.leads import engagement
from app.leads.models import Lead, Stage, StageChange
from app.leads.service import change_stage, record_event
from app.sales import alerts
from app.sales.assignment import assign
from app.sales.models import Alert, Assignment, SalesSettings

OUTCOMES = {"accepted": Stage.SQL, "recycled": Stage.RECYCLED,
            "disqualified": Stage.DISQUALIFIED}


def on_mql(change: StageChange) -> Assignment | None:
    """Assign and alert for this MQL stage change. Idempotent; the caller commits."""
    lead: Lead = change.lead
    latest = db.session.scalar(sa.select(sa.func.max(StageChange.id))
                               .where(StageChange.lead_id == lead.id))
    if lead.stage != Stage.MQL.value or latest != change.id:
        return None  # the lead moved on before we got here: nothing to hand off
    if lead.awaiting_confirmation:
        return None  # a double opt-in never confirmed: not for sales (confirming rescores)
    settings = SalesSettings.load()
    assignment = assign(change, settings)
    recipient = assignment.user.email if assignment.user else settings.team_email
    if recipient:
        alerts.create("mql", recipient, assignment=assignment, user_id=assignment.user_id,
                      key=alerts.alert_key("mql", assignment, recipient))
    return assignment


def follow_owner(lead_ids: list[int], owner: User | None) -> None:
    """The leads' owner changed by hand ("Set owner"): their handoffs still waiting for an
    answer go to the new owner, a sales user (their queue, theirs to decide), or to the whole
    team for nobody. A non-sales owner leaves the handoff with the rep who has it."""
    if owner is not None and owner.role != Role.SALES.value:
        return
    db.session.execute(
        sa.update(Assignment).where(
            Assignment.lead_id.in_(lead_ids), Assignment.outcome.is_(None),
            Assignment.lead_id.in_(sa.select(Lead.id).where(Lead.stage == Stage.MQL.value)))
        .values(user_id=owner.id if owner else None)
        .execution_options(synchronize_session=False))


def current_assignment(lead: Lead) -> Assignment | None:
    return db.session.scalar(sa.select(Assignment).where(Assignment.lead_id == lead.id)
                             .order_by(Assignment.id.desc()).limit(1))


class DecisionRefused(Exception):
    """The user may not decide on this handoff (not the owner, and the setting is off)."""


def may_decide(user: User, assignment: Assignment, settings: SalesSettings) -> bool:
    return assignment.user_id in (None, user.id) or settings.allow_non_owner


def decide(alert: Alert, user: User, outcome: str, reason: str = "") -> bool:
    """Accept (→ SQL) or reject (→ recycled / disqualified) the handoff behind `alert`.

    Returns False when it was already decided (the caller says by whom). Raises
    DecisionRefused for a non-owner unless the workspace allows it; both are logged.
    Commits.
    """
    return decide_assignment(alert.assignment, user, outcome, reason)


def decide_assignment(assignment: Assignment, user: User, outcome: str,
                      reason: str = "") -> bool:
    """`decide` for a handoff reached without its alert (the lead page)."""
    lead = assignment.lead
    settings = SalesSettings.load()
    non_owner = assignment.user_id not in (None, user.id)
    if non_owner and not settings.allow_non_owner:
        record_event(lead, "handoff_refused", data={
            "by": user.email, "owner": assignment.user.email if assignment.user else None,
            "outcome": outcome, "assignment_id": assignment.id})
        db.session.commit()
        raise DecisionRefused()
    # Compare-and-set: of two clicks (or two people), exactly one decides.
    now = utcnow()
    won = rows_matched(
        sa.update(Assignment).where(Assignment.id == assignment.id, Assignment.outcome.is_(None))
        .values(outcome=outcome, decided_at=now, decided_by_id=user.id,
                decision_reason=reason[:2000]).execution_options(synchronize_session=False)
    ) == 1
    if not won:
        db.session.rollback()
        return False
    if lead.stage != Stage.MQL.value:
        # Someone moved the lead by another path; record the click, change nothing.
        db.session.commit()
        return True
    if outcome == "accepted":
        text = f"Accepted by {user.email}"
    else:
        text = f"Rejected by {user.email}: {reason}" if reason else f"Rejected by {user.email}"
    change = change_stage(lead, OUTCOMES[outcome], reason=text, actor="user",
                          actor_user_id=user.id)
    assert change is not None  # the lead is an MQL (checked above) and no outcome is one
    if outcome == "accepted" and lead.owner_id != user.id:
        # The SQL belongs to whoever accepted it (a team alert, or an allowed non-owner).
        previous = assignment.user.email if assignment.user else None
        lead.owner_id = user.id
        record_event(lead, "owner_assigned", dedupe_key=f"owner-assigned:{change.id}",
                     data={"owner": user.email, "method": "accepted", "previous": previous,
                           "reason": f"accepted by {user.email}", "stage_change_id": change.id})
    if outcome == "recycled":
        before = round(engagement.current(lead), 2)
        engagement.store(lead, 0.0)
        record_event(lead, "engagement_reset", data={"from": before, "reason": text})
    record_event(lead, "handoff_decided", data={
        "outcome": outcome, "by": user.email, "non_owner": non_owner,
        "owner": assignment.user.email if assignment.user else None,
        "assignment_id": assignment.id})
    db.session.commit()
    return True

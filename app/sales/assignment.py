"""Who gets a new MQL: a territory rule by country, else weighted round robin among the
active sales users working today. Every decision is written down with its reason."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from app.auth.models import Role, User
from app.db import db, utcnow
from app.leads.models import Lead, StageChange
from app.leads.service import record_event
from app.sales.models import WORK_WEEK, Assignment, SalesRep, SalesSettings, Territory
from app.sales.worktime import local


@dataclass
class Candidate:
    user: User
    weight: int
    working_days: list[int]


def candidates() -> list[Candidate]:
    """Active sales users with their rotation settings (weight 0 = out of the rotation)."""
    rows = db.session.execute(
        sa.select(User, SalesRep).outerjoin(SalesRep, SalesRep.user_id == User.id)
        .where(User.active.is_(True), User.role == Role.SALES.value).order_by(User.id)
    ).all()
    out = []
    for user, rep in rows:
        weight = rep.weight if rep is not None else 1
        days = list(rep.working_days) if rep is not None else list(WORK_WEEK)
        if weight > 0:
            out.append(Candidate(user, weight, days))
    return out


def _is_sales(user: User | None) -> bool:
    return user is not None and user.active and user.role == Role.SALES.value


def _round_robin(settings: SalesSettings) -> tuple[User | None, str]:
    pool = candidates()
    if not pool:
        return None, "no active sales user in the rotation"
    weekday = local(utcnow(), settings).weekday()
    working = [c for c in pool if weekday in c.working_days]
    note = ""
    if not working:
        working, note = pool, " (nobody works today, so everyone in the rotation)"
    counts = dict(db.session.execute(
        sa.select(Assignment.user_id, sa.func.count()).where(Assignment.method == "round_robin")
        .group_by(Assignment.user_id)
    ).all())
    # Weighted round robin: the fewest assignments per unit of weight goes next.
    chosen = min(working, key=lambda c: (counts.get(c.user.id, 0) / c.weight, c.user.id))
    share = f"{counts.get(chosen.user.id, 0)} before, weight {chosen.weight}"
    return chosen.user, f"round robin among {len(working)} rep(s){note}; {share}"


def assign(change: StageChange, settings: SalesSettings) -> Assignment:
    """The lead's owner for this MQL, recorded once per stage change (safe to call twice)."""
    existing = db.session.scalar(
        sa.select(Assignment).where(Assignment.stage_change_id == change.id))
    if existing is not None:
        return existing
    lead: Lead = change.lead
    user: User | None = None
    method, reason = "none", ""
    if _is_sales(lead.owner):
        user, method, reason = lead.owner, "kept", "the lead already had this owner"
    if user is None and settings.assignment_mode == "territory" and lead.country:
        rule = db.session.scalar(sa.select(Territory).where(Territory.country == lead.country))
        if rule is not None and _is_sales(rule.user):
            user, method, reason = rule.user, "territory", f"territory {lead.country}"
        else:
            reason = f"no active owner for territory {lead.country}; "
    if user is None:
        user, rr_reason = _round_robin(settings)
        method = "round_robin" if user is not None else "none"
        reason += rr_reason
    assignment = Assignment(lead_id=lead.id, stage_change_id=change.id,
                            user_id=user.id if user else None, method=method, reason=reason,
                            created_at=utcnow())
    db.session.add(assignment)
    lead.owner_id = user.id if user else lead.owner_id
    record_event(lead, "owner_assigned", dedupe_key=f"owner-assigned:{change.id}",
                 data={"owner": user.email if user else None, "method": method,
                       "reason": reason, "stage_change_id": change.id})
    db.session.flush()
    return assignment

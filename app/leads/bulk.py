"""Bulk actions on leads: set owner, change stage (with a reason), export CSV, and what other
packages add with `add_bulk_action` (nurture: enroll in a sequence).

A selection is either the leads ticked on the page (run at once) or every lead matching the
list's filter when the user asked (a `BulkJob` run by an RQ job through the outbox, with
progress on its page; a lead created after that is left alone).
The job walks the matches by id in batches and commits its progress after each one, so a
redelivered or restarted job resumes where it stopped. Each lead that an action cannot take
(a move the lifecycle forbids, a lead that may not be enrolled) is counted as skipped, with
the first reasons kept.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.orm import Mapped, mapped_column, relationship
from wtforms import SelectChoice

from app import outbox
from app.auth.models import User
from app.db import JSONType, Model, UTCDateTime, db, utcnow
from app.jobs import job
from app.leads import engagement, lifecycle
from app.leads.csv_cut import cut_csv
from app.leads.models import Event, Lead, Stage
from app.leads.query import LeadQuery, id_batches

log = logging.getLogger(__name__)

BATCH = 500
INLINE_MAX = 200  # a selection this small runs in the request
KEEP_REASONS = 20


@dataclass(frozen=True)
class Outcome:
    done: int
    skipped: list[str]  # one reason per lead not changed


@dataclass(frozen=True)
class BulkAction:
    name: str
    label: str
    apply: Callable[[list[int], dict[str, Any], User, BulkJob | None], Outcome]
    choice: tuple[str, str, Callable[[], list[SelectChoice]]] | None = None
    needs_reason: bool = False
    roles: tuple[str, ...] = ("marketer", "sales")
    # Called as each delivery of the job starts, before its first batch: undo what a delivery
    # cut short wrote past the committed `last_id` outside the database (a file).
    resume: Callable[[BulkJob], None] | None = None


def add_bulk_action(app: Flask, action: BulkAction) -> None:
    app.extensions.setdefault("bulk_actions", {})[action.name] = action


def add_owner_listener(app: Flask, listener: Callable[[list[int], User | None], None]) -> None:
    """`listener(lead_ids, owner)` runs in the transaction of "Set owner", after those leads'
    owner changed (sales hands their waiting handoffs to the new owner)."""
    app.extensions.setdefault("owner_listeners", []).append(listener)


def actions() -> dict[str, BulkAction]:
    return dict(current_app.extensions.get("bulk_actions", {}))


class BulkJob(Model):
    __tablename__ = "lead_bulk_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    query: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # LeadQuery.args()
    lead_ids: Mapped[list[int] | None] = mapped_column(JSONType)  # ticked leads, or None
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(10), default="queued")  # running, done, failed
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    last_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                         default=0)
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    file_name: Mapped[str | None] = mapped_column(sa.String(200))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(sa.Text)

    created_by = relationship("User")

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        return min(99, int(100 * (self.done + self.skipped) / self.total)) if self.total else 0


def _batches(bulk: BulkJob) -> Any:
    if bulk.lead_ids is not None:
        ids = sorted(i for i in bulk.lead_ids if i > bulk.last_id)
        for start in range(0, len(ids), BATCH):
            yield ids[start:start + BATCH]
        return
    # The leads of the filter that existed when the user asked: not one that arrived while
    # the job waited or ran (it was on no page they acted on).
    lq = LeadQuery.parse({k: v for k, v in bulk.query.items()})
    yield from id_batches(lq, BATCH, after_id=bulk.last_id, now=bulk.created_at,
                          created_by=bulk.created_at)


def start(action: str, params: dict[str, Any], user: User, *, lead_ids: list[int] | None,
          lq: LeadQuery | None) -> BulkJob:
    """Record the job; ticked leads (few) run now, the rest through the outbox. Commits."""
    bulk = BulkJob(action=action, params=params, query=lq.args() if lq else {},
                   lead_ids=lead_ids, created_by_id=user.id, created_at=utcnow(),
                   status="queued", total=0, done=0, skipped=0, last_id=0, reasons=[])
    db.session.add(bulk)
    db.session.flush()
    if lead_ids is not None and len(lead_ids) <= INLINE_MAX:
        db.session.commit()
        try:
            run_bulk(bulk.id)
        except Exception:  # no worker will resume it: the job says it stopped, and where
            db.session.rollback()
            log.exception("bulk action %s stopped by an error", bulk.id)
            _stopped(bulk.id)
        return bulk
    outbox.add("app.leads.bulk.run", bulk.id, dedupe_key=f"bulk:{bulk.id}")
    db.session.commit()
    return bulk


def run_bulk(bulk_id: int) -> str:
    """Do (or finish) the job. Idempotent: a finished job is left alone, a cut one resumes."""
    bulk = db.session.get(BulkJob, bulk_id)
    if bulk is None or bulk.status in ("done", "failed"):
        return bulk.status if bulk else "missing"
    action = actions().get(bulk.action)
    user = db.session.get(User, bulk.created_by_id) if bulk.created_by_id else None
    if action is None or user is None:
        bulk.status, bulk.error = "failed", "The action or its user no longer exists."
        db.session.commit()
        return bulk.status
    if bulk.status == "queued":
        if bulk.lead_ids is not None:
            bulk.total = len(bulk.lead_ids)
        else:
            lq = LeadQuery.parse(dict(bulk.query))
            bulk.total = db.session.scalar(sa.select(sa.func.count()).select_from(
                lq.statement(bulk.created_at).where(Lead.created_at <= bulk.created_at)
                .with_only_columns(Lead.id).subquery())) or 0
        bulk.status = "running"
        db.session.commit()
    if action.resume is not None:
        action.resume(bulk)
    for ids in _batches(bulk):
        outcome = action.apply(ids, dict(bulk.params), user, bulk)
        bulk.done += outcome.done
        bulk.skipped += len(outcome.skipped)
        room = KEEP_REASONS - len(bulk.reasons or [])
        if room > 0 and outcome.skipped:
            bulk.reasons = [*(bulk.reasons or []), *outcome.skipped[:room]]
        bulk.last_id = ids[-1]
        db.session.commit()
    bulk.status, bulk.finished_at = "done", utcnow()
    db.session.commit()
    return bulk.status


def _stopped(bulk_id: int) -> None:
    """Mark a job cut by an error failed: its committed batches stand, the rest are untouched."""
    bulk = db.session.get_one(BulkJob, bulk_id)
    bulk.status, bulk.finished_at = "failed", utcnow()
    bulk.error = (f"Stopped by an error after {bulk.done + bulk.skipped} of {bulk.total} leads; "
                  "the others were not changed. Try again, or tell an operator if it happens "
                  "again.")
    db.session.commit()


@job
def run(bulk_id: int) -> str:
    """The outbox job of a bulk action on a whole filter."""
    return run_bulk(bulk_id)


# The core's actions.

def _leads(ids: list[int]) -> list[Lead]:
    return list(db.session.scalars(sa.select(Lead).where(Lead.id.in_(ids)).order_by(Lead.id)))


def set_owner(ids: list[int], params: dict[str, Any], user: User, _: Any) -> Outcome:
    """One UPDATE and one multi-row INSERT of `owner_assigned` events per batch."""
    owner_id = int(params["owner_id"]) if params.get("owner_id") else None
    owner = db.session.get(User, owner_id) if owner_id else None
    changing = list(db.session.scalars(sa.select(Lead.id).where(
        Lead.id.in_(ids), Lead.owner_id.is_distinct_from(owner_id))))
    if changing:
        now = utcnow()
        db.session.execute(sa.update(Lead).where(Lead.id.in_(changing))
                           .values(owner_id=owner_id, updated_at=now)
                           .execution_options(synchronize_session=False))
        data = {"owner": owner.email if owner else None, "method": "bulk",
                "reason": f"set by {user.email}"}
        db.session.execute(sa.insert(Event), [
            {"lead_id": lead_id, "type": "owner_assigned", "occurred_at": now, "data": data,
             "is_bot": False} for lead_id in changing])
        for listener in current_app.extensions.get("owner_listeners", []):
            listener(changing, owner)
        db.session.expire_all()
    return Outcome(len(ids), [])


def move_stage(ids: list[int], params: dict[str, Any], user: User, _: Any) -> Outcome:
    done, skipped = 0, []
    for lead in _leads(ids):
        try:
            lifecycle.move(lead, params["stage"], reason=params.get("reason", ""),
                           actor="user", actor_user_id=user.id, by=user)
        except lifecycle.ForbiddenMove as exc:
            skipped.append(f"{lead.email_display}: {exc}")
        else:
            done += 1
    return Outcome(done, skipped)


EXPORT_COLUMNS = ("id", "email", "first_name", "last_name", "company", "job_title", "country",
                  "stage", "fit_score", "engagement", "owner", "created_at", "last_activity_at")


def export_folder() -> str:
    path = os.path.join(current_app.instance_path, "exports")
    os.makedirs(path, exist_ok=True)
    return path


def _export_path(bulk: BulkJob) -> str:
    return os.path.join(export_folder(), f"leads-{bulk.id}.csv")


def resume_export(bulk: BulkJob) -> None:
    """Drop the rows a delivery cut short wrote past the committed `last_id` (rows are in id
    order, the id first), so a redelivered job does not list them twice."""
    path = _export_path(bulk)
    if os.path.exists(path):
        cut_csv(path, lambda row: bool(row) and row[0].isdigit() and int(row[0]) <= bulk.last_id)


def export_rows(ids: list[int], params: dict[str, Any], user: User,
                bulk: BulkJob | None) -> Outcome:
    from app.sales.export import defuse  # the one formula-safe cell writer

    assert bulk is not None
    path = _export_path(bulk)
    bulk.file_name = os.path.basename(path)
    fresh = not os.path.exists(path) or os.path.getsize(path) == 0
    now = utcnow()
    with open(path, "a" if not fresh else "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        if fresh:
            writer.writerow(EXPORT_COLUMNS)
        for lead in _leads(ids):
            writer.writerow([defuse(v) for v in (
                lead.id, lead.email_display, lead.first_name, lead.last_name, lead.company,
                lead.job_title, lead.country, lead.stage, lead.fit_score,
                round(engagement.current(lead, now), 1), lead.owner.email if lead.owner else "",
                lead.created_at, lead.last_activity_at)])
    return Outcome(len(ids), [])


def stage_choices() -> list[SelectChoice]:
    return [SelectChoice(s.value, s.label) for s in Stage]


def owner_choices() -> list[SelectChoice]:
    from app.leads.record import staff_choices

    return [SelectChoice("", "Nobody"), *staff_choices()]


def init_app(app: Flask) -> None:
    add_bulk_action(app, BulkAction("owner", "Set owner", set_owner,
                                    choice=("owner_id", "New owner", owner_choices)))
    add_bulk_action(app, BulkAction("stage", "Change stage", move_stage,
                                    choice=("stage", "Move to", stage_choices),
                                    needs_reason=True))
    add_bulk_action(app, BulkAction("export", "Export CSV", export_rows, resume=resume_export))

"""What people add to a lead by hand: notes, and tasks with a due date, an owner and a
reminder email. Nothing here commits: the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Model, UTCDateTime, db, utcnow


class LeadNote(Model):
    __tablename__ = "lead_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"),
                                         index=True)
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author = relationship("User")


class LeadTask(Model):
    """A to-do on a lead. Its owner gets one reminder email when it falls due (ledger key
    `task-reminder:<id>`), unless it was done first."""

    __tablename__ = "lead_tasks"
    __table_args__ = (sa.Index("ix_lead_tasks_open_due", "done_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"),
                                         index=True)
    title: Mapped[str] = mapped_column(sa.String(300))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"),
                                                 index=True)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner = relationship("User", foreign_keys=[owner_id])
    created_by = relationship("User", foreign_keys=[created_by_id])
    lead = relationship("Lead")

    @property
    def overdue(self) -> bool:
        return self.done_at is None and self.due_at <= utcnow()


def add_note(lead_id: int, body: str, author_id: int | None) -> LeadNote:
    note = LeadNote(lead_id=lead_id, body=body.strip(), author_id=author_id, created_at=utcnow())
    db.session.add(note)
    db.session.flush()
    return note


def add_task(lead_id: int, title: str, due_at: datetime, owner_id: int | None,
             created_by_id: int | None) -> LeadTask:
    task = LeadTask(lead_id=lead_id, title=title.strip(), due_at=due_at, owner_id=owner_id,
                    created_by_id=created_by_id, created_at=utcnow())
    db.session.add(task)
    db.session.flush()
    return task


def open_tasks(lead_id: int) -> list[LeadTask]:
    return list(db.session.scalars(
        sa.select(LeadTask).where(LeadTask.lead_id == lead_id, LeadTask.done_at.is_(None))
        .order_by(LeadTask.due_at, LeadTask.id)))

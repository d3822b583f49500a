"""Saved views of the leads list: a name and the filter's query string, per user (or shared
with everyone)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Model, UTCDateTime, db, utcnow


class SavedView(Model):
    __tablename__ = "lead_saved_views"
    __table_args__ = (sa.UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    query: Mapped[str] = mapped_column(sa.Text, default="")  # the list's query string
    shared: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def visible_to(user_id: int) -> list[SavedView]:
    return list(db.session.scalars(
        sa.select(SavedView).where(sa.or_(SavedView.user_id == user_id,
                                          SavedView.shared.is_(True)))
        .order_by(SavedView.name, SavedView.id)))


def save(user_id: int, name: str, query: str, shared: bool) -> SavedView:
    """Create the view, or replace the query of this user's view of that name."""
    view = db.session.scalar(sa.select(SavedView).where(SavedView.user_id == user_id,
                                                        SavedView.name == name))
    if view is None:
        view = SavedView(user_id=user_id, name=name, created_at=utcnow())
        db.session.add(view)
    view.query, view.shared = query, shared
    db.session.flush()
    return view

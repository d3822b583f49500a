"""`leads.last_activity_at` for events written in bulk (tracking, page views, sends), which
bypass `record_event`. Periodic and idempotent: it raises each lead's time to the newest human
event among those written since the last run (plus a margin for transactions that committed
out of id order). The watermark lives in Redis; lost, the last WINDOW events are re-read.
"""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa

from app import queue
from app.db import db
from app.jobs import job
from app.leads.models import Event, Lead
from app.leads.service import NOT_ACTIVITY

log = logging.getLogger(__name__)

WATERMARK = "kindling:lead-activity:watermark"
WINDOW = 100_000  # events re-read when the watermark is lost
MARGIN = 5_000  # events below the watermark read again (late commits)
CHUNK = 50_000


def _watermark() -> int | None:
    try:
        raw = queue.connection().get(WATERMARK)
    except redis.RedisError:  # Redis down: re-read the window, correct anyway
        return None
    return int(raw) if raw else None


def _remember(value: int) -> None:
    try:
        queue.connection().set(WATERMARK, value)
    except redis.RedisError:
        log.info("lead activity watermark not saved (Redis unavailable)")


def refresh_between(low: int, high: int) -> int:
    """Raise last_activity_at from human events with low < id ≤ high; leads updated."""
    newest = (sa.select(Event.lead_id, sa.func.max(Event.occurred_at).label("at"))
              .where(Event.id > low, Event.id <= high, Event.lead_id.is_not(None),
                     Event.is_bot.is_(False), Event.type.not_in(NOT_ACTIVITY))
              .group_by(Event.lead_id).subquery())
    statement = (sa.update(Lead).where(Lead.id == newest.c.lead_id)
                 .where(sa.or_(Lead.last_activity_at.is_(None),
                               Lead.last_activity_at < newest.c.at))
                 .values(last_activity_at=newest.c.at)
                 .execution_options(synchronize_session=False))
    return db.session.execute(statement).rowcount or 0  # type: ignore[attr-defined]


def refresh() -> int:
    top = db.session.scalar(sa.select(sa.func.max(Event.id))) or 0
    mark = _watermark()
    low = max(0, (top - WINDOW) if mark is None else (mark - MARGIN))
    changed = 0
    while low < top:
        high = min(top, low + CHUNK)
        changed += refresh_between(low, high)
        db.session.commit()
        low = high
    _remember(top)
    return changed


@job
def run() -> int:
    """Periodic entry point (registered in `app.leads.init_app`)."""
    return refresh()

"""Branch conditions: each answers yes or no about one enrollment's lead, from the database."""

from __future__ import annotations

from fnmatch import fnmatch

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event
from app.leads.service import PROFILE_FIELDS
from nurture.models import Condition, Enrollment, Send, SendStatus, Step


def previous_send(enrollment: Enrollment) -> Send | None:
    return db.session.scalar(
        sa.select(Send).where(Send.enrollment_id == enrollment.id,
                              Send.status == SendStatus.SENT.value)
        .order_by(Send.sent_at.desc(), Send.id.desc()).limit(1)
    )


def send_has_event(send: Send, event_type: str) -> bool:
    """A human (not a machine, e.g. a privacy proxy or link scanner) did `event_type` on it."""
    found = db.session.scalar(
        sa.select(Event.id).where(
            Event.lead_id == send.lead_id, Event.type == event_type,
            Event.is_bot.is_(False), Event.send_id == send.id,
        ).limit(1)
    )
    return found is not None


def _visited(enrollment: Enrollment, pattern: str) -> bool:
    urls = db.session.scalars(
        sa.select(Event.url).where(Event.lead_id == enrollment.lead_id,
                                   Event.type == "page_viewed", Event.is_bot.is_(False),
                                   Event.occurred_at >= enrollment.created_at,
                                   Event.url.is_not(None))
        .order_by(Event.occurred_at.desc()).limit(1000)
    ).all()
    return any(fnmatch(url, pattern) for url in urls if url is not None)


def evaluate(step: Step, enrollment: Enrollment) -> bool:
    params = step.params or {}
    lead = enrollment.lead
    condition = Condition(step.condition)
    if condition in (Condition.OPENED_PREVIOUS, Condition.CLICKED_PREVIOUS):
        send = previous_send(enrollment)
        kind = "email_opened" if condition is Condition.OPENED_PREVIOUS else "email_clicked"
        if kind == "email_opened":
            # A click proves an open even when the pixel was blocked.
            return send is not None and (send_has_event(send, kind)
                                         or send_has_event(send, "email_clicked"))
        return send is not None and send_has_event(send, kind)
    if condition is Condition.VISITED_URL_PATTERN:
        return _visited(enrollment, str(params.get("pattern") or ""))
    if condition is Condition.SCORE_AT_LEAST:
        score = lead.fit_score if params.get("kind") == "fit" else lead.engagement_now
        return score >= int(params.get("score") or 0)
    if condition is Condition.FIELD_EQUALS:
        field = str(params.get("field") or "")
        value = getattr(lead, field) if field in PROFILE_FIELDS else \
            (lead.attributes or {}).get(field)
        return str(value or "").strip().casefold() == \
            str(params.get("value") or "").strip().casefold()
    if condition is Condition.IN_STAGE:
        return lead.stage in (params.get("stages") or [])
    return False

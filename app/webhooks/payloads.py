"""What a webhook carries: the lead's whole history, as a sales tool needs it.

`lead_payload(lead)`: the profile (as the API shows it), both scores with the why (the lead's
story sections that feature packages add, e.g. the score breakdown), the stage history, the
source and UTM of the first submission, and the last activity a person did."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.api.documents import lead_document, stage_change_document
from app.db import db
from app.leads.models import Event, Lead, StageChange
from app.leads.story import story

HISTORY_MAX = 50


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def jsonable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in document.items()}


def lead_payload(lead: Lead) -> dict[str, Any]:
    changes = db.session.scalars(
        sa.select(StageChange).where(StageChange.lead_id == lead.id)
        .order_by(StageChange.changed_at, StageChange.id).limit(HISTORY_MAX)).all()
    first = db.session.scalar(
        sa.select(Event).where(Event.lead_id == lead.id, Event.type == "form_submitted")
        .order_by(Event.occurred_at, Event.id).limit(1))
    last = db.session.scalar(
        sa.select(Event).where(Event.lead_id == lead.id, Event.is_bot.is_(False))
        .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(1))
    sections = story(lead)
    why = [{"title": s.title, "lines": s.lines} for s in sections
           if s.title not in ("Who", "Recent activity")]
    source: dict[str, Any] = {"created_by": changes[0].actor_label if changes else None}
    if first is not None:
        data = first.data or {}
        source.update({"form": data.get("form"), "channel": data.get("channel"),
                       "campaign_id": first.campaign_id, "landing_url": first.url,
                       "utm": data.get("utm") or {}, "at": _iso(first.occurred_at)})
    return {
        "lead": jsonable(lead_document(lead)),
        "scores": {"fit": lead.fit_score or 0,
                   "engagement": round(lead.engagement_now, 2), "why": why},  # as of now
        "stage_history": [jsonable(stage_change_document(c)) for c in changes],
        "source": source,
        "last_activity": None if last is None else {
            "type": last.type, "at": _iso(last.occurred_at), "url": last.url},
    }

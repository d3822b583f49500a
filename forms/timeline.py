"""A submission's answers and consent on the lead's timeline (`add_event_details`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event
from forms.models import Submission


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def submission_answers(events: list[Event]) -> dict[int, list[str]]:
    """{event id: lines}: the form's name, each answer, and the consent given, if any."""
    ids = {int(e.data["submission_id"]): e.id for e in events
           if str((e.data or {}).get("submission_id", "")).isdigit()}
    if not ids:
        return {}
    found = db.session.scalars(sa.select(Submission).where(Submission.id.in_(ids))).all()
    out: dict[int, list[str]] = {}
    for submission in found:
        event_id = ids[submission.id]
        event = next(e for e in events if e.id == event_id)
        lines = [f"Form: {event.data.get('form', '')}"]
        lines += [f"{key.replace('_', ' ')}: {_text(value)}"
                  for key, value in (submission.values or {}).items()]
        if submission.consent_given:
            lines.append(f"Consent: “{submission.consent_text}”")
        source = (submission.utm or {}).get("utm_source")
        if source:
            lines.append(f"UTM source: {source}")
        out[event_id] = lines
    return out

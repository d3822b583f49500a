"""A lead's whole story, as plain data every channel can render: the admin, alert emails, APIs.

The core tells who the lead is and what they did; feature packages add sections (the score
breakdown, sequences) with `add_story_section`, so the core never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import Flask, current_app

from app.db import db
from app.leads.models import Event, Lead
from app.templating import event_label, format_datetime


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)


Provider = Callable[[Lead], "Section | None"]


def add_story_section(app: Flask, provider: Provider) -> None:
    app.extensions.setdefault("story_sections", []).append(provider)


def profile(lead: Lead) -> Section:
    rows = [("Email", lead.email_display), ("Name", lead.full_name), ("Company", lead.company),
            ("Job title", lead.job_title), ("Country", lead.country), ("Phone", lead.phone),
            ("Stage", lead.stage_label), ("Fit score", str(lead.fit_score)),
            ("Engagement", f"{lead.engagement_now:.0f}")]
    return Section("Who", [f"{label}: {value}" for label, value in rows if value])


def timeline(lead: Lead, limit: int = 15) -> Section:
    """Recent human activity, newest first (machine opens and clicks are left out)."""
    events = db.session.scalars(
        sa.select(Event).where(Event.lead_id == lead.id, Event.is_bot.is_(False))
        .order_by(Event.occurred_at.desc()).limit(limit)
    ).all()
    lines = []
    for event in events:
        line = f"{format_datetime(event.occurred_at)} — {event_label(event.type)}"
        if event.url:
            line += f" ({event.url})"
        lines.append(line)
    return Section("Recent activity", lines or ["No activity yet."])


def story(lead: Lead) -> list[Section]:
    sections = [profile(lead)]
    for provider in current_app.extensions.get("story_sections", []):
        section = provider(lead)
        if section is not None:
            sections.append(section)
    sections.append(timeline(lead))
    return sections

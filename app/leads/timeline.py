"""A lead's full timeline, newest first, one page at a time: events (submissions with their
answers, emails with their subject and a person/machine mark, clicks, visits, downloads),
stage changes, notes and tasks, and whatever other packages add.

Packages plug in with `add_timeline_source` (a whole kind of entry, e.g. sales alerts) or
`add_event_details` (more lines for one event type, e.g. a submission's answers), so the core
imports none of them. Pages are cut by a cursor (time, kind, id) of the last entry shown: no
OFFSET, and every source reads at most one page past the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from app.db import db
from app.leads.models import Event, Lead, Stage, StageChange
from app.leads.work import LeadNote, LeadTask
from app.templating import event_label

PAGE_SIZE = 30
EMAIL_EVENTS = ("email_sent", "email_delivered", "email_opened", "email_clicked",
                "email_dropped", "email_blocked", "bounced", "spam_reported", "unsubscribed")


@dataclass(frozen=True)
class Cursor:
    at: datetime
    kind: str
    id: int

    def key(self) -> tuple[datetime, str, int]:
        return (self.at, self.kind, self.id)

    def dump(self) -> str:
        return f"{self.at.isoformat()}~{self.kind}~{self.id}"

    @classmethod
    def load(cls, text: str | None) -> Cursor | None:
        """The cursor in a page address; None (the first page) for anything malformed."""
        try:
            at, kind, ident = (text or "").split("~")
            when = datetime.fromisoformat(at)
            if when.tzinfo is None:
                return None
            return cls(when, kind, int(ident))
        except ValueError:
            return None


@dataclass
class Item:
    at: datetime
    kind: str  # event | stage | note | task | a package's own
    id: int
    title: str
    lines: list[str] = field(default_factory=list)
    machine: bool | None = None  # None: not activity that can be a machine's
    url: str | None = None

    def key(self) -> tuple[datetime, str, int]:
        return (self.at, self.kind, self.id)


Source = Callable[[Lead, "Cursor | None", int], Iterable[Item]]
Details = Callable[[list[Event]], dict[int, list[str]]]


def add_timeline_source(app: Flask, source: Source) -> None:
    """`source(lead, cursor, limit)` returns up to `limit` entries at or before `cursor.at`."""
    app.extensions.setdefault("timeline_sources", []).append(source)


def add_event_details(app: Flask, event_type: str, details: Details) -> None:
    """`details(events)` returns {event id: lines} for events of `event_type` on one page."""
    app.extensions.setdefault("timeline_details", {}).setdefault(event_type, []).append(details)


def _before(column: Any, cursor: Cursor | None, kind: str | None = None,
            id_column: Any = None) -> Any:
    """Entries at or before the cursor's time; given the source's `kind` and id column, only
    those after the cursor in (time, kind, id) order, so that any number of entries sharing
    the cursor's time page on (a page's read past them would otherwise be all they fill)."""
    if cursor is None:
        return sa.true()
    if kind is None or kind < cursor.kind:
        return column <= cursor.at
    if kind > cursor.kind:
        return column < cursor.at
    return sa.or_(column < cursor.at, sa.and_(column == cursor.at, id_column < cursor.id))


def _changes_lines(changes: dict[str, Any]) -> list[str]:
    return [f"{name.replace('_', ' ')}: {old or '—'} → {new or '—'}"
            for name, (old, new) in changes.items()]


def _email_subjects(lead: Lead, events: list[Event]) -> dict[str, str]:
    """send id → subject, for provider events of this page that name a send."""
    wanted = {str(e.details.get("send_id")) for e in events
              if e.type in EMAIL_EVENTS and e.details.get("send_id")}
    if not wanted:
        return {}
    rows = db.session.scalars(sa.select(Event).where(
        Event.lead_id == lead.id, Event.type == "email_sent")).all()
    return {str(e.details.get("send_id")): str(e.data.get("subject") or "") for e in rows
            if str(e.details.get("send_id")) in wanted}


def events_source(lead: Lead, cursor: Cursor | None, limit: int) -> list[Item]:
    events = list(db.session.scalars(
        sa.select(Event).where(Event.lead_id == lead.id,
                               _before(Event.occurred_at, cursor, "event", Event.id))
        .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit)))
    subjects = _email_subjects(lead, events)
    extra: dict[int, list[str]] = {}
    hooks = current_app.extensions.get("timeline_details", {})
    for event_type, providers in hooks.items():
        of_type = [e for e in events if e.type == event_type]
        for provider in providers if of_type else []:
            for event_id, found in provider(of_type).items():
                extra.setdefault(event_id, []).extend(found)
    items = []
    for event in events:
        data = event.details
        lines: list[str] = []
        subject = data.get("subject") or subjects.get(str(data.get("send_id")))
        if subject:
            lines.append(f"Subject: {subject}")
        if event.type == "profile_edited":
            lines += _changes_lines(data.get("changes") or {})
            if data.get("by"):
                lines.append(f"By {data['by']}")
        elif data.get("reason") and event.type not in ("form_submitted",):
            lines.append(str(data["reason"]))
        lines += extra.get(event.id, [])
        if event.is_bot and event.bot_reason:
            lines.append(f"Machine: {event.bot_reason}")
        person_or_machine = event.type in EMAIL_EVENTS[2:4] or event.type.endswith("_viewed") \
            or event.type in ("asset_downloaded", "site_returned")
        items.append(Item(event.occurred_at, "event", event.id, event_label(event.type), lines,
                          machine=event.is_bot if person_or_machine or event.is_bot else None,
                          url=event.url))
    return items


def stages_source(lead: Lead, cursor: Cursor | None, limit: int) -> list[Item]:
    rows = db.session.scalars(
        sa.select(StageChange).where(StageChange.lead_id == lead.id,
                                     _before(StageChange.changed_at, cursor, "stage",
                                             StageChange.id))
        .order_by(StageChange.changed_at.desc(), StageChange.id.desc()).limit(limit))
    items = []
    for change in rows:
        before = Stage(change.from_stage).label if change.from_stage else "—"
        title = f"Stage {before} → {Stage(change.to_stage).label}"
        said = [f"By {change.actor_label}"] + ([change.reason] if change.reason else [])
        items.append(Item(change.changed_at, "stage", change.id, title, said))
    return items


def notes_source(lead: Lead, cursor: Cursor | None, limit: int) -> list[Item]:
    rows = db.session.scalars(
        sa.select(LeadNote).where(LeadNote.lead_id == lead.id,
                                  _before(LeadNote.created_at, cursor, "note", LeadNote.id))
        .order_by(LeadNote.created_at.desc(), LeadNote.id.desc()).limit(limit))
    return [Item(n.created_at, "note", n.id,
                 f"Note by {n.author.email if n.author else 'a former user'}", [n.body])
            for n in rows]


def tasks_source(lead: Lead, cursor: Cursor | None, limit: int) -> list[Item]:
    rows = db.session.scalars(
        sa.select(LeadTask).where(LeadTask.lead_id == lead.id,
                                  _before(LeadTask.created_at, cursor, "task", LeadTask.id))
        .order_by(LeadTask.created_at.desc(), LeadTask.id.desc()).limit(limit))
    items = []
    for task in rows:
        owner = task.owner.email if task.owner else "nobody"
        state = "done" if task.done_at else ("overdue" if task.overdue else "open")
        items.append(Item(task.created_at, "task", task.id, f"Task: {task.title}",
                          [f"Due {task.due_at:%Y-%m-%d %H:%M} UTC, owner {owner} ({state})"]))
    return items


CORE_SOURCES: tuple[Source, ...] = (events_source, stages_source, notes_source, tasks_source)


def page(lead: Lead, cursor: Cursor | None = None,
         size: int = PAGE_SIZE) -> tuple[list[Item], Cursor | None]:
    """One page of the timeline after `cursor`, and the cursor of the next page (or None)."""
    # Entries tied with the cursor's time come back again: read a little more, cut by the key.
    limit = size + 20
    items: list[Item] = []
    for source in (*CORE_SOURCES, *current_app.extensions.get("timeline_sources", [])):
        for item in source(lead, cursor, limit):
            if cursor is None or item.key() < cursor.key():
                items.append(item)
    items.sort(key=Item.key, reverse=True)
    shown = items[:size]
    more = len(items) > size
    return shown, (Cursor(*shown[-1].key()) if more and shown else None)

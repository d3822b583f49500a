"""Landing-page views, written off the request path.

A view used to cost the visitor an INSERT and a COMMIT. Now `record` appends one JSON hit to a
Redis list without waiting for Redis's reply (`app.pushbuffer`, as tracking hits do) and the
periodic `flush` (`campaigns.jobs.flush_page_views`) writes them as `page_viewed` events in
batches, under a Redis lock so one writer works at a time.

Nothing is lost and nothing is written twice:
- Redis unreachable at view time: the hit waits in the web process's memory and goes to Redis
  when Redis answers again (at exit, to `<instance>/page-view-spill/`, which `flush` reads).
- The writer reads the head of the list, commits, then trims what it committed; a crash in
  between replays the batch, and each hit's `pv:<id>` dedupe key makes the replay a no-op.

The timeline join still holds although a view may reach the database after the submit that
should have claimed it: a view is written with the lead of the earliest later activity of the
same browser that already belongs to a lead (the submit that would have joined it), and stays
anonymous otherwise, for the next submit to join (`forms.pipeline`). Two people on one browser
stay two leads: each view goes to the first submit after it, exactly as the in-request join did.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from app import pushbuffer, queue
from app.db import db
from app.leads.event_columns import present_keys
from app.leads.models import Event
from app.pushbuffer import Buffer
from campaigns.models import LandingPage

log = logging.getLogger(__name__)

KEY = "kindling:campaigns:page-views"
LOCK_KEY = "kindling:campaigns:page-views:writer"
LOCK_MS = 60_000
BATCH_SIZE = 1000
DEDUPE_PREFIX = "pv:"

SPILL_FOLDER = "page-view-spill"


def buffer(app: Flask | None = None) -> Buffer:
    """This process's buffer of page views on their way to Redis."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return pushbuffer.for_app(app, KEY, SPILL_FOLDER, "page views")


def record(*, url: str, campaign_id: int | None, landing_page_id: int,
           visitor_id: str | None, bot_reason: str | None) -> None:
    """Queue one landing-page view; the visitor never waits for Redis."""
    buffer().push({"id": secrets.token_hex(12), "ts": time.time(), "url": url[:2000],
                   "campaign_id": campaign_id, "page_id": landing_page_id,
                   "vid": None if bot_reason else visitor_id, "bot": bot_reason})


def _at(ts: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _claimed_by(vids: set[str], since: datetime) -> dict[str, list[tuple[datetime, int]]]:
    """Per browser: (time, lead) of its activity since `since` that already has a lead,
    oldest first."""
    found: dict[str, list[tuple[datetime, int]]] = {}
    for part in _chunks(sorted(vids)):
        rows = db.session.execute(
            sa.select(Event.visitor_id, Event.occurred_at, Event.lead_id)
            .where(Event.visitor_id.in_(part), Event.lead_id.is_not(None),
                   Event.is_bot.is_(False), Event.occurred_at >= since)
            .order_by(Event.occurred_at, Event.id)
        ).all()
        for vid, at, lead_id in rows:
            if vid is not None and lead_id is not None:  # as the query asks
                found.setdefault(vid, []).append((_aware(at), lead_id))
    return found


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _lead_for(claims: list[tuple[datetime, int]], at: datetime) -> int | None:
    for when, lead_id in claims:
        if when >= at:
            return lead_id
    return None


def _campaigns_of(page_ids: set[Any]) -> dict[int, int]:
    """Landing page id -> its campaign id, for the pages that exist."""
    ids = sorted(i for i in page_ids if isinstance(i, int))
    found: dict[int, int] = {}
    for part in _chunks(ids):
        rows = db.session.execute(
            sa.select(LandingPage.id, LandingPage.campaign_id).where(LandingPage.id.in_(part)))
        found.update({page_id: campaign_id for page_id, campaign_id in rows})
    return found


def write(hits: list[dict[str, Any]]) -> list[Event]:
    """Add `page_viewed` events for `hits` to the session (not committed). Hits already
    written (a replayed batch) are skipped."""
    hits = [h for h in hits if isinstance(h, dict) and h.get("id")]
    if not hits:
        return []
    keys = [DEDUPE_PREFIX + str(h["id"]) for h in hits]
    done = present_keys(Event.dedupe_key, keys)
    campaigns = _campaigns_of({h.get("page_id") for h in hits})
    for hit in hits:
        hit["at"] = _at(hit.get("ts"))
        if hit.get("campaign_id") is None:  # reported by the page's beacon: by page id only
            hit["campaign_id"] = campaigns.get(hit.get("page_id") or 0)
    # A beacon naming no page of ours (forged, or deleted since) is not a view.
    hits = [h for h in hits if h.get("page_id") in campaigns]
    if not hits:
        return []
    vids = {h["vid"] for h in hits if h.get("vid")}
    claims = _claimed_by(vids, min(h["at"] for h in hits)) if vids else {}
    events = []
    for hit, key in zip(hits, keys):
        if key in done:
            continue
        done.add(key)
        vid = hit.get("vid") or None
        lead_id = _lead_for(claims.get(vid, []), hit["at"]) if vid else None
        events.append(Event(
            lead_id=lead_id, type="page_viewed", occurred_at=hit["at"],
            campaign_id=hit.get("campaign_id"), url=hit.get("url") or None,
            data={"landing_page_id": hit.get("page_id")}, is_bot=bool(hit.get("bot")),
            bot_reason=hit.get("bot") or None, visitor_id=vid, dedupe_key=key))
    db.session.add_all(events)
    db.session.flush()
    return events


def _anonymous(events: list[Event]) -> list[tuple[int, str, datetime]]:
    return [(e.id, e.visitor_id, _aware(e.occurred_at)) for e in events
            if e.lead_id is None and e.visitor_id]


def _rejoin(anonymous: list[tuple[int, str, datetime]]) -> None:
    """A submit that committed while the batch was being written could not see its views,
    nor they it: look once more, after the commit, for views of the batch that now have a
    claim."""
    if not anonymous:
        return
    claims = _claimed_by({vid for _, vid, _ in anonymous}, min(at for _, _, at in anonymous))
    changed = False
    for event_id, vid, at in anonymous:
        lead_id = _lead_for(claims.get(vid, []), at)
        if lead_id is not None:
            db.session.execute(sa.update(Event).where(Event.id == event_id,
                                                      Event.lead_id.is_(None))
                               .values(lead_id=lead_id))
            changed = True
    if changed:
        db.session.commit()
    else:
        db.session.rollback()  # end the read-only transaction


def flush(max_batches: int = 50) -> int:
    """Write what is waiting in Redis (and in spilled files). Returns the number of hits
    handled."""
    buffer().settle()  # views this very process pushed (tests, `run-all`): all in Redis now

    def handle(hits: list[dict[str, Any]]):
        anonymous = _anonymous(write(hits))
        db.session.commit()
        return lambda: _rejoin(anonymous)

    size = int(current_app.config.get("PAGE_VIEW_BATCH_SIZE", BATCH_SIZE))
    return queue.drain_list(KEY, LOCK_KEY, size, handle, max_batches=max_batches,
                            lock_ms=LOCK_MS, first=lambda conn: buffer().reload_spilled(conn),
                            refused=(sa.exc.DataError,), after_refusal=db.session.rollback)

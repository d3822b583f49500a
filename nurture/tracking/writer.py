"""The batch writer: Redis list → classified events in the database, many at a time.

Runs as a periodic job (`nurture.tracking.jobs.flush`, every second) under a Redis lock, so one
writer works at a time. Classification that needs history happens here: how soon after delivery,
several links clicked within a second, whether the visitor is a known lead and whether this visit
starts a new session. Each hit carries an id; its rows' dedupe keys derive from it, so a batch
replayed after a crash writes nothing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from fnmatch import fnmatch
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from app import queue
from app.db import db
from app.leads.models import Event
from nurture.tracking import buffer, classify, store
from nurture.tracking.models import Visitor

log = logging.getLogger(__name__)

LOCK_KEY = "kindling:tracking:writer"
SITE_TYPES = ("page_viewed", "email_clicked", "form_submitted", "site_returned")


def flush(max_batches: int = 50) -> int:
    """Write what is waiting in Redis. Returns the number of hits handled."""
    buffer.get(current_app).settle()  # hits this process pushed (tests, `run-all`): all in Redis

    def handle(hits: list[dict[str, Any]]) -> None:
        write(hits)

    size = int(current_app.config["TRACKING_BATCH_SIZE"])
    return queue.drain_list(buffer.KEY, LOCK_KEY, size, handle, max_batches=max_batches,
                            first=lambda conn: buffer.reload_spilled(current_app, conn),
                            refused=(sa.exc.DataError,), after_refusal=db.session.rollback)


def high_intent_type(url: str) -> str | None:
    """The event type a configured high-intent URL pattern gives this page, if any.

    A pattern with a wildcard is matched (fnmatch) against the path; a plain one matches the
    path itself and everything under it ("/pricing" matches "/pricing/teams")."""
    path = urlsplit(url).path.rstrip("/") or "/"
    for pattern, event_type in (current_app.config["TRACKING_HIGH_INTENT"] or {}).items():
        if any(ch in pattern for ch in "*?["):
            if fnmatch(path, pattern):
                return event_type
        else:
            base = pattern.rstrip("/") or "/"
            if path == base or path.startswith(base + "/"):
                return event_type
    return None


class _Batch:
    def __init__(self, hits: list[dict[str, Any]]):
        self.hits = sorted((h for h in hits if isinstance(h, dict) and h.get("id")),
                           key=lambda h: float(h.get("ts") or 0))
        for hit in self.hits:
            hit["at"] = store.from_timestamp(hit.get("ts"))
        self.rows: list[dict[str, Any]] = []
        self.links: dict[str, int] = {}  # visitor id -> lead id, to remember
        cfg = current_app.config
        self.machine_seconds = float(cfg["TRACKING_MACHINE_SECONDS"])
        self.session_gap = timedelta(minutes=float(cfg["TRACKING_SESSION_MINUTES"]))

    def load(self) -> None:
        self.sends = store.send_facts(int(h["send_id"]) for h in self.hits
                                      if h.get("kind") in ("open", "click"))
        vids = {v for h in self.hits if h.get("kind") in ("visit", "click")
                for v in (h.get("vid"), h.get("alt_vid")) if v}
        self.visitors = _known_visitors(vids)
        lead_ids = {f.lead_id for f in self.sends.values()} | set(self.visitors.values())
        self.untracked = store.untracked_leads(lead_ids)
        self.last_site = _last_site_activity(lead_ids)
        self.recent_clicks = _recent_clicks(self.sends, self.hits)

    def run(self) -> None:
        self.load()
        bursts = self._bursts()
        for position, hit in enumerate(self.hits):
            kind = hit.get("kind")
            if kind == "open":
                self._open(hit)
            elif kind == "click":
                self._click(hit, burst=position in bursts)
            elif kind == "visit":
                self._visit(hit)

    def _bursts(self) -> set[int]:
        by_send: dict[int, list[tuple[int | None, datetime, int]]] = {}
        for position, hit in enumerate(self.hits):
            if hit.get("kind") == "click" and not hit.get("honeypot"):
                by_send.setdefault(int(hit["send_id"]), []).append(
                    (position, hit["at"], int(hit.get("index") or 0)))
        flagged: set[int] = set()
        for send_id, clicks in by_send.items():
            everything = clicks + [(None, at, index)
                                   for at, index in self.recent_clicks.get(send_id, [])]
            hits = classify.burst_indices([(at, index) for _, at, index in everything])
            flagged.update(p for i in hits if (p := everything[i][0]) is not None)
        return flagged

    def _verdict(self, hit: dict[str, Any], kind: str, send: store.SendFacts
                 ) -> classify.Verdict:
        verdict = classify.by_request(kind, method=hit.get("method") or "GET",
                                      user_agent=hit.get("ua") or "", ip=hit.get("ip"),
                                      honeypot=bool(hit.get("honeypot")))
        if not verdict.is_bot:
            verdict = classify.too_soon(hit["at"], send.reference,
                                        self.machine_seconds) or verdict
        return verdict

    def _open(self, hit: dict[str, Any]) -> None:
        send = self.sends.get(int(hit["send_id"]))
        if send is None or send.lead_id in self.untracked:
            return
        verdict = self._verdict(hit, "open", send)
        self.rows.append(store.event_row(
            "email_opened", lead_id=send.lead_id, at=hit["at"], verdict=verdict,
            send=send, dedupe_key=f"t:{hit['id']}"))
        if not verdict.is_bot:
            send.human_open = True

    def _click(self, hit: dict[str, Any], *, burst: bool) -> None:
        send = self.sends.get(int(hit["send_id"]))
        if send is None or send.lead_id in self.untracked:
            return
        verdict = self._verdict(hit, "click", send)
        if burst and not verdict.is_bot:
            verdict = classify.Verdict(True, classify.BURST)
        index = int(hit.get("index") or 0)
        self.rows.append(store.event_row(
            "email_clicked", lead_id=send.lead_id, at=hit["at"], verdict=verdict,
            url=hit.get("url"),
            # A scanner's browser id must never become the lead's: only people's clicks keep it.
            visitor_id=None if verdict.is_bot else hit.get("vid"),
            # The URL is in `url`, once; the link's position only past the first.
            send=send, data={"link_index": index} if index else None,
            dedupe_key=f"t:{hit['id']}"))
        if verdict.is_bot:
            return
        if not send.human_open:  # a person clicked, so a person opened it
            send.human_open = True
            self.rows.append(store.event_row(
                "email_opened", lead_id=send.lead_id, at=hit["at"],
                verdict=classify.Verdict(False, classify.IMPLIED_BY_CLICK),
                send=send, dedupe_key=f"implied-open:{send.id}"))
        vid = hit.get("vid")
        if vid:
            self.visitors[vid] = send.lead_id
            self.links[vid] = send.lead_id
        self.last_site[send.lead_id] = max(hit["at"], self.last_site.get(send.lead_id,
                                                                         hit["at"]))

    def _visit(self, hit: dict[str, Any]) -> None:
        vid, alt = hit.get("vid"), hit.get("alt_vid")
        lead_id = (self.visitors.get(vid) if vid else None) or \
            (self.visitors.get(alt) if alt else None)
        if lead_id is not None:
            if lead_id in self.untracked:
                return
            for one in (vid, alt):
                if one and one not in self.visitors:
                    self.visitors[one] = self.links[one] = lead_id
        url = (hit.get("url") or "")[:2000]
        verdict = classify.by_request("visit", user_agent=hit.get("ua") or "", ip=hit.get("ip"))
        common = {"lead_id": lead_id, "at": hit["at"], "verdict": verdict, "url": url,
                  "visitor_id": vid}
        referrer = (hit.get("ref") or "")[:2000]
        self.rows.append(store.event_row("page_viewed", data={"referrer": referrer} if referrer
                                         else {}, dedupe_key=f"t:{hit['id']}", **common))
        intent = high_intent_type(url)
        if intent:
            self.rows.append(store.event_row(intent, dedupe_key=f"t:{hit['id']}:intent",
                                             **common))
        if lead_id is None or verdict.is_bot:
            return
        previous = self.last_site.get(lead_id)
        if previous is not None and hit["at"] - previous >= self.session_gap:
            gap = int((hit["at"] - previous).total_seconds() // 60)
            self.rows.append(store.event_row(
                "site_returned", data={"minutes_away": gap}, dedupe_key=f"t:{hit['id']}:return",
                **common))
        self.last_site[lead_id] = hit["at"]

    def save(self) -> None:
        store.insert_events(self.rows)
        if self.links:
            store.insert_ignoring(Visitor, [
                {"visitor_id": vid, "lead_id": lead_id, "source": "email click"}
                for vid, lead_id in self.links.items()], ["visitor_id"])
            for vid, lead_id in self.links.items():  # earlier anonymous visits are theirs too
                db.session.execute(sa.update(Event).where(Event.visitor_id == vid,
                                                          Event.lead_id.is_(None))
                                   .values(lead_id=lead_id)
                                   .execution_options(synchronize_session=False))


def write(hits: list[dict[str, Any]]) -> int:
    """Classify and store one batch of hits, committing. Returns the rows written."""
    batch = _Batch(hits)
    if not batch.hits:
        return 0
    batch.run()
    batch.save()
    db.session.commit()
    # the leads of human rows, and those whose earlier anonymous visits were just attached
    store.score_leads(store.human_lead_ids(batch.rows) | set(batch.links.values()))
    return len(batch.rows)


def _known_visitors(vids: set[str]) -> dict[str, int]:
    known: dict[str, int] = {}
    ids = sorted(vids)
    for part in store.chunks(ids):
        known.update(db.session.execute(
            sa.select(Visitor.visitor_id, Visitor.lead_id).where(Visitor.visitor_id.in_(part))
        ).all())
    missing = [v for v in ids if v not in known]
    for part in store.chunks(missing):  # a form submission tied the browser to a lead
        rows = db.session.execute(
            sa.select(Event.visitor_id, sa.func.max(Event.lead_id))
            .where(Event.visitor_id.in_(part), Event.lead_id.is_not(None),
                   Event.is_bot.is_(False))
            .group_by(Event.visitor_id)
        ).all()
        known.update((vid, lead_id) for vid, lead_id in rows if vid and lead_id is not None)
    return known


def _last_site_activity(lead_ids: set[int]) -> dict[int, datetime]:
    out: dict[int, datetime] = {}
    for part in store.chunks(sorted(lead_ids)):
        rows = db.session.execute(
            sa.select(Event.lead_id, sa.func.max(Event.occurred_at))
            .where(Event.lead_id.in_(part), Event.type.in_(SITE_TYPES), Event.is_bot.is_(False))
            .group_by(Event.lead_id)
        ).all()
        out.update((lead_id, at) for lead_id, at in rows if lead_id is not None)
    return out


def _recent_clicks(sends: dict[int, store.SendFacts], hits: list[dict[str, Any]]
                   ) -> dict[int, list[tuple[datetime, int]]]:
    """Clicks already stored for the batch's sends in the second before its first click."""
    clicks = [h for h in hits if h.get("kind") == "click" and int(h["send_id"]) in sends]
    if not clicks:
        return {}
    since = min(h["at"] for h in clicks) - timedelta(seconds=1)
    wanted = {int(h["send_id"]) for h in clicks}
    lead_ids = sorted({sends[int(h["send_id"])].lead_id for h in clicks})
    out: dict[int, list[tuple[datetime, int]]] = {}
    for part in store.chunks(lead_ids):
        for key, at, data in db.session.execute(
                sa.select(Event.send_id, Event.occurred_at, Event.data)
                .where(Event.lead_id.in_(part), Event.type == "email_clicked",
                       Event.occurred_at >= since, Event.send_id.in_(sorted(wanted)))):
            out.setdefault(int(key), []).append((at, int((data or {}).get("link_index") or 0)))
    return out

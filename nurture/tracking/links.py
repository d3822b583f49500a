"""Tracked links for one send: `prepare(send)` at render time, `target(send_id, index)` at click
time.

The render step calls `tracker.rewrite(url)` for every link of the body; each distinct URL is
stored as a `SendLink` row (in the caller's transaction) and replaced by `/t/c/<token>`, where
the token signs (send id, link index) only. `mailto:`, in-page anchors, the unsubscribe link and
our own tracking URLs are left alone. `pixel_url()` is the open pixel and `honeypot_url()` a link
to hide in the layout (no person can see or click it: whatever follows it is a machine).
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

import sqlalchemy as sa
from flask import current_app

from app.db import db
from nurture.models import Send
from nurture.tracking import tokens
from nurture.tracking.models import SendLink

CACHE_SIZE = 4096


class Tracker:
    def __init__(self, send_id: int, existing: dict[str, int], unsubscribe_url: str | None):
        self.send_id = send_id
        self._by_url = dict(existing)  # a re-render (retry) reuses the rows it wrote before
        self._next = max(existing.values(), default=tokens.HONEYPOT_INDEX) + 1
        self._unsubscribe_url = unsubscribe_url
        self._base = current_app.config["BASE_URL"]

    def _skip(self, url: str) -> bool:
        if not url.lower().startswith(("http://", "https://")):
            return True  # mailto:, tel:, #anchors, relative links
        if self._unsubscribe_url and url == self._unsubscribe_url:
            return True
        return url.startswith((f"{self._base}/u/", f"{self._base}/t/"))

    def rewrite(self, url: str) -> str:
        """The tracked URL for `url` (or `url` itself when it must not be tracked)."""
        url = (url or "").strip()
        if self._skip(url):
            return url
        index = self._by_url.get(url)
        if index is None:
            index = self._next
            self._next += 1
            self._by_url[url] = index
            db.session.add(SendLink(send_id=self.send_id, index=index, url=url))
        return f"{self._base}/t/c/{tokens.click_token(self.send_id, index)}"

    def pixel_url(self) -> str:
        return f"{self._base}/t/o/{tokens.open_token(self.send_id)}.gif"

    def honeypot_url(self) -> str:
        return f"{self._base}/t/c/{tokens.click_token(self.send_id, tokens.HONEYPOT_INDEX)}"


def prepare(send: Send, unsubscribe_url: str | None = None) -> Tracker:
    """A tracker for `send` (which must have an id: flush it first)."""
    if send.id is None:
        db.session.flush()
    existing = dict(db.session.execute(
        sa.select(SendLink.url, SendLink.index).where(SendLink.send_id == send.id)
    ).all())
    return Tracker(send.id, existing, unsubscribe_url)


def rewriter_hook(send_id: int, url: str) -> str:
    """Fits `app.extensions["nurture_link_rewriter"]` (render.py's hook): one tracker per send
    per database session."""
    trackers = db.session.info.setdefault("tracking_trackers", {})
    tracker = trackers.get(send_id)
    if tracker is None:
        send = db.session.get(Send, send_id)
        if send is None:
            return url
        tracker = trackers[send_id] = prepare(send)
    return tracker.rewrite(url)


class _LinkCache:
    """Send links never change once written: a small per-app LRU saves the click a query."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._data: OrderedDict[tuple[int, int], str] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[int, int]) -> str | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[int, int], value: str) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def target(send_id: int, index: int) -> str | None:
    """The URL stored for link `index` of `send_id`, or None."""
    cache: _LinkCache = current_app.extensions.setdefault("tracking_link_cache", _LinkCache())
    url = cache.get((send_id, index))
    if url is None:
        url = db.session.scalar(sa.select(SendLink.url).where(SendLink.send_id == send_id,
                                                              SendLink.index == index))
        if url is not None:
            cache.put((send_id, index), url)
    return url

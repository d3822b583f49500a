"""Tracked links for one send: `prepare(send)` at render time, `target(send_id, index)` at click
time.

The render step calls `tracker.rewrite(url)` for every link of the body; each distinct URL is
stored as a `SendLink` row (in the caller's transaction) and replaced by `/t/c/<token>`, where
the token signs (send id, link index) only. `mailto:`, in-page anchors, the unsubscribe link and
our own tracking URLs are left alone. `pixel_url()` is the open pixel and `honeypot_url()` a link
to hide in the layout (no person can see or click it: whatever follows it is a machine).

Targets also live in Redis (a hash per send, `TRACKING_LINK_TTL` seconds), written once the
send's transaction commits, so the click's hot path (`fastpath`) reads the target and queues the
hit in one Redis call (`CLICK_SCRIPT`) without touching the database. The `SendLink` row stays
the source of truth: a target missing from Redis (expired, flushed, written before this existed)
is read from the database by the Flask view and put back.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from threading import Lock

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy.orm import Session

from app.db import db
from nurture.models import Send
from nurture.tracking import tokens
from nurture.tracking.models import SendLink

log = logging.getLogger(__name__)

CACHE_SIZE = 4096
REDIS_PREFIX = "kindling:tracking:link:"
DEFAULT_TTL = 7 * 24 * 3600
_SESSION_KEY = "tracking_links_new"

# KEYS[1] the send's link hash, KEYS[2] the hit list; ARGV[1] the link index, ARGV[2] the hit's
# JSON without its closing brace, ending in `"url":`. The stored target completes the hit, which
# is queued only when the link is known; the target is returned (false when unknown).
CLICK_SCRIPT = """
local url = redis.call('HGET', KEYS[1], ARGV[1])
if not url then return false end
redis.call('RPUSH', KEYS[2], ARGV[2] .. cjson.encode(url) .. '}')
return url
"""


_INSERT_LINKS = sa.insert(SendLink)  # built once: its cache key is worked out once too


class Tracker:
    """`deferred`: new links are kept here rather than added to the session; the caller
    `write`s them in its own transaction and, once that has committed, `publish`es its
    `deferred_links()` to Redis (the chunk runner: once for the whole chunk)."""

    def __init__(self, send_id: int, existing: dict[str, int], unsubscribe_url: str | None,
                 *, deferred: bool = False):
        self.send_id = send_id
        self._by_url = dict(existing)  # a re-render (retry) reuses the rows it wrote before
        self._next = max(existing.values(), default=tokens.HONEYPOT_INDEX) + 1
        self._unsubscribe_url = unsubscribe_url
        self._base = current_app.config["BASE_URL"]
        self._deferred: list[tuple[int, int, str]] | None = [] if deferred else None

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
            if self._deferred is not None:
                self._deferred.append((self.send_id, index, url))
            else:
                db.session.add(SendLink(send_id=self.send_id, index=index, url=url))
                db.session.info.setdefault(_SESSION_KEY, []).append((self.send_id, index, url))
        return f"{self._base}/t/c/{tokens.click_token(self.send_id, index)}"

    def write(self, connection: sa.Connection) -> None:
        """Insert the deferred links, in the caller's transaction (one statement)."""
        if self._deferred:
            connection.execute(_INSERT_LINKS, [
                {"send_id": send_id, "index": index, "url": url}
                for send_id, index, url in self._deferred])

    def deferred_links(self) -> list[tuple[int, int, str]]:
        """The deferred links, for the caller to `publish` (with other sends') once committed."""
        return list(self._deferred or [])

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


def cache(app=None) -> _LinkCache:
    """This process's cache of link targets (they never change once written)."""
    return (app or current_app).extensions.setdefault("tracking_link_cache", _LinkCache())


def target(send_id: int, index: int) -> str | None:
    """The URL stored for link `index` of `send_id`, or None."""
    cache_ = cache()
    url = cache_.get((send_id, index))
    if url is None:
        url = db.session.scalar(sa.select(SendLink.url).where(SendLink.send_id == send_id,
                                                              SendLink.index == index))
        if url is not None:
            cache_.put((send_id, index), url)
    return url


def redis_key(send_id: int) -> str:
    return f"{REDIS_PREFIX}{int(send_id)}"


def _ttl(app=None) -> int:
    return int((app or current_app).config.get("TRACKING_LINK_TTL") or DEFAULT_TTL)


def publish(items: Iterable[tuple[int, int, str]], conn=None, app=None) -> int:
    """Put (send id, index, url) targets in Redis for the click's hot path. Best effort: on a
    Redis error the click reads the database instead. Returns the targets written."""
    by_send: dict[int, dict[str, str]] = {}
    for send_id, index, url in items:
        by_send.setdefault(int(send_id), {})[str(int(index))] = url
    if not by_send:
        return 0
    app = app or current_app
    conn = conn or app.extensions["redis"]
    ttl = _ttl(app)
    try:
        pipe = conn.pipeline(transaction=False)
        for send_id, mapping in by_send.items():
            pipe.hset(redis_key(send_id), mapping=mapping)
            pipe.expire(redis_key(send_id), ttl)
        pipe.execute()
    except RedisError as exc:
        log.warning("tracking: link targets not cached in Redis (%s); clicks read the database",
                    exc)
        return 0
    return sum(len(m) for m in by_send.values())


def click_in_redis(call, send_id: int, index: int, hit_prefix: str, queue_key: str
                   ) -> str | None:
    """One round trip: the stored target of (send, index) and, when there is one, the hit
    (`hit_prefix` + the target as JSON + `}`) queued on `queue_key`. `call(*command)` runs a
    Redis command (the tracking buffer's `call`). Raises Redis errors."""
    keys = (redis_key(send_id), queue_key, str(index), hit_prefix)
    try:
        found = call("EVALSHA", _click_sha(), 2, *keys)
    except NoScriptError:
        found = call("EVAL", CLICK_SCRIPT, 2, *keys)
    if found is None:
        return None
    return found.decode("utf-8") if isinstance(found, bytes) else str(found)


def _click_sha(_cache: list[str] = []) -> str:  # noqa: B006  computed once
    if not _cache:
        import hashlib

        _cache.append(hashlib.sha1(CLICK_SCRIPT.encode()).hexdigest())
    return _cache[0]


@sa.event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    """Links written in a committed transaction go to Redis (never before: a rolled-back
    render may reuse the index for another URL)."""
    new = session.info.pop(_SESSION_KEY, None)
    if not new:
        return
    try:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:  # no app context: the database alone serves these clicks
        return
    if "redis" in app.extensions:
        publish(new, app=app)


@sa.event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_SESSION_KEY, None)

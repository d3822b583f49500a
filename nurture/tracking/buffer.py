"""The hot path's queue: tracking hits go to a Redis list, never straight to the database.

`push` appends one JSON event with the web process's short Redis timeouts. When Redis cannot
take it, the event waits in this process's memory (in order) and a small background thread
hands it to Redis as soon as Redis answers again; the next successful push drains the backlog
first too. Nothing is dropped. The batch writer (`nurture.tracking.writer`) reads the list
from its head and trims what it has committed, so a crash between the two replays events,
and their dedupe keys make the replay harmless.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any

from flask import Flask, current_app
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY = "kindling:tracking:events"
RETRY_SECONDS = 1.0
WARN_BACKLOG = 10_000


class Buffer:
    def __init__(self, app: Flask):
        self.app = app
        self.pending: deque[str] = deque()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def _redis(self):
        return self.app.extensions["redis"]

    def push(self, event: dict[str, Any]) -> bool:
        """Queue one event. True when Redis has it, False when it waits in memory."""
        payload = json.dumps(event, separators=(",", ":"))
        if not self.pending:
            try:
                self._redis().rpush(KEY, payload)
                return True
            except RedisError as exc:
                log.warning("tracking: Redis unavailable (%s); keeping events in memory", exc)
        with self.lock:
            self.pending.append(payload)
            if len(self.pending) % WARN_BACKLOG == 0:
                log.warning("tracking: %d events waiting in memory for Redis", len(self.pending))
        self._start_retry()  # in the background: the visitor does not wait on a dead Redis
        return False

    def flush(self) -> bool:
        """Hand the in-memory backlog to Redis. True when nothing is left waiting."""
        with self.lock:
            while self.pending:
                batch = list(self.pending)[:500]
                try:
                    self._redis().rpush(KEY, *batch)
                except RedisError:
                    self._start_retry()
                    return False
                for _ in batch:
                    self.pending.popleft()
            return True

    def _start_retry(self) -> None:
        with self._thread_lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._retry_loop, name="tracking-buffer",
                                               daemon=True)
                self.thread.start()

    def _retry_loop(self) -> None:
        while True:
            time.sleep(RETRY_SECONDS)
            try:
                with self.lock:
                    if not self.pending:
                        return
                    batch = list(self.pending)[:500]
                    self._redis().rpush(KEY, *batch)
                    for _ in batch:
                        self.pending.popleft()
            except RedisError:
                continue
            except Exception:  # never let the thread die with events still in memory
                log.exception("tracking: buffer retry failed")


def get(app: Flask | None = None) -> Buffer:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    buffer = app.extensions.get("tracking_buffer")
    if buffer is None:
        buffer = app.extensions["tracking_buffer"] = Buffer(app)
    return buffer


def push(event: dict[str, Any]) -> bool:
    return get().push(event)

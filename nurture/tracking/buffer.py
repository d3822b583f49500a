"""The hot path's queue: tracking hits go to a Redis list, never straight to the database.

`push` appends one JSON event with the web process's short Redis timeouts. When Redis cannot
take it, the event waits in this process's memory (in order; later events queue behind it) and
a small background thread hands the backlog to Redis as soon as Redis answers again. Its Redis
calls happen outside the lock `push` takes, so requests never wait on a slow or dead Redis. A
process that exits with a backlog while Redis is still away writes it to
`<instance>/tracking-spill/`, and the batch writer hands such files back to Redis. Nothing is
dropped. The batch writer (`nurture.tracking.writer`) reads the list
from its head and trims what it has committed, so a crash between the two replays events,
and their dedupe keys make the replay harmless.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
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
        self._drain_lock = threading.Lock()
        atexit.register(self.close)

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
        while self.pending:
            try:
                self._drain_once()
            except RedisError:
                self._start_retry()
                return False
        return True

    def _drain_once(self) -> None:
        """Move the oldest part of the backlog to Redis. The Redis call happens outside
        `self.lock`, so a request pushing meanwhile never waits on a slow or dead Redis; new
        events queue behind the batch, and only drainers (one at a time) pop."""
        with self._drain_lock:
            with self.lock:
                batch = list(itertools.islice(self.pending, 500))
            if not batch:
                return
            self._redis().rpush(KEY, *batch)
            with self.lock:
                for _ in batch:
                    self.pending.popleft()

    def _start_retry(self) -> None:
        with self._thread_lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._retry_loop, name="tracking-buffer",
                                               daemon=True)
                self.thread.start()

    def _retry_loop(self) -> None:
        while True:
            time.sleep(RETRY_SECONDS)
            with self._thread_lock:  # a push that lands now starts a new thread, not none
                if not self.pending:
                    self.thread = None
                    return
            try:
                self._drain_once()
            except RedisError:
                continue
            except Exception:  # never let the thread die with events still in memory
                log.exception("tracking: buffer retry failed")

    def close(self) -> None:
        """At process exit: one last try to hand the backlog to Redis, then, when Redis is
        still away, write it to `<instance>/tracking-spill/` for the batch writer to pick up."""
        try:
            while self.pending:
                self._drain_once()
        except Exception:  # Redis still away (or anything else): exit must go on
            pass
        with self.lock:
            left = list(self.pending)
            self.pending.clear()
        if left:
            spill(self.app, left)


def get(app: Flask | None = None) -> Buffer:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    buffer = app.extensions.get("tracking_buffer")
    if buffer is None:
        buffer = app.extensions["tracking_buffer"] = Buffer(app)
    return buffer


def push(event: dict[str, Any]) -> bool:
    return get().push(event)


def spill_dir(app: Flask) -> str:
    return os.path.join(app.config["INSTANCE_PATH"], "tracking-spill")


def spill(app: Flask, payloads: list[str]) -> str | None:
    """Write events a dying process could not hand to Redis to a file (one JSON a line)."""
    folder = spill_dir(app)
    name = os.path.join(folder, f"{os.getpid()}-{time.time_ns()}.jsonl")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(name + ".part", "w", encoding="utf-8") as out:
            out.write("\n".join(payloads) + "\n")
        os.replace(name + ".part", name)  # the writer only reads complete files
    except OSError:
        log.exception("tracking: could not save %d events at exit", len(payloads))
        return None
    log.warning("tracking: Redis away at exit; %d events saved to %s", len(payloads), name)
    return name


def reload_spilled(app: Flask, conn) -> int:
    """Hand spilled files back to Redis (the batch writer calls this). Returns events moved."""
    folder = spill_dir(app)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jsonl"))
    except FileNotFoundError:
        return 0
    moved = 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as src:
                payloads = [line for line in src.read().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            log.error("tracking: cannot read spilled events %s: %s", path, exc)
            continue
        for start in range(0, len(payloads), 500):
            conn.rpush(KEY, *payloads[start:start + 500])
        os.remove(path)  # a crash before this replays the file: dedupe keys make it harmless
        moved += len(payloads)
    return moved

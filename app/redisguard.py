"""Redis on a visitor's request: a short budget, and a breaker that remembers a sick Redis.

A Redis that refuses costs nothing, but one that accepts connections and never answers made
each Redis step of a request wait out its socket timeout, retried by redis-py (ten times by
default), step after step: 6–17 s for a form post. On the request path every Redis step now
goes through `guarded_client`:

- one try, no retries, `REDIS_WEB_CONNECT_TIMEOUT` to connect and `REDIS_WEB_SOCKET_TIMEOUT`
  to answer (together `REDIS_WEB_BUDGET`-sized: about 250 ms);
- the first failure opens the client's `Breaker` for `REDIS_BREAKER_SECONDS`: until then every
  step fails at once, without a byte sent, so the rest of that request and the next ones skip
  Redis and take their fallbacks (the rate limiter's memory, the outbox relay, the hit
  buffer's memory). The next step after that tries Redis again; a success closes the breaker.

The breaker is per client (per app), shared by the threads of a process.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


# Every guarded connection, pooled or not (the hit buffers make their own), for `disconnect_all`.
_connections: weakref.WeakSet[Any] = weakref.WeakSet()


def disconnect_all() -> None:
    for connection in list(_connections):
        try:
            connection.disconnect()
        except Exception:  # noqa: BLE001, S110 - at exit; a broken one is closed enough
            pass


class Breaker:
    """Open for `seconds` after a failure; closed again by the first success after that."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.open_until = 0.0
        self.failures = 0  # consecutive, for the log
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self, exc: BaseException) -> None:
        with self._lock:
            was_open = self.failures > 0
            self.failures += 1
            self.open_until = time.monotonic() + self.seconds
        if not was_open:
            log.warning("Redis failed on the request path (%s); requests skip it for %g s at a "
                        "time until it answers again", type(exc).__name__, self.seconds)

    def succeed(self) -> None:
        if self.failures:
            with self._lock:
                failures, self.failures = self.failures, 0
            if failures:
                log.info("Redis answers again on the request path")


class BreakerOpen(redis.exceptions.ConnectionError):
    """Raised instead of talking to Redis while the breaker is open."""


_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _guarded(connection_class: type, breaker: Breaker) -> type:
    """`connection_class` that sends nothing while `breaker` is open, and whose failures open
    it (also for connections made outside the pool: the hit buffer's)."""

    class Guarded(connection_class):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _connections.add(self)

        def connect(self, *args: Any, **kwargs: Any) -> Any:
            self._refuse_while_open()
            return self._watch(super().connect, *args, **kwargs)

        def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
            self._refuse_while_open()
            return self._watch(super().send_packed_command, *args, **kwargs)

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            reply = self._watch(super().read_response, *args, **kwargs)
            breaker.succeed()
            return reply

        def _refuse_while_open(self) -> None:
            if breaker.is_open():
                raise BreakerOpen("Redis skipped: it failed moments ago")

        def _watch(self, call: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except _FAILURES as exc:
                if not isinstance(exc, BreakerOpen):
                    breaker.trip(exc)
                raise

    Guarded.__name__ = f"Guarded{connection_class.__name__}"
    return Guarded


class GuardedPool(redis.ConnectionPool):
    """A pool that hands out no connection while its breaker is open."""

    breaker: Breaker

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.breaker.is_open():
            raise BreakerOpen("Redis skipped: it failed moments ago")
        return super().get_connection(*args, **kwargs)


def guarded_pool(url: str, *, connect_timeout: float, socket_timeout: float,
                 breaker_seconds: float) -> GuardedPool:
    pool = GuardedPool.from_url(url, socket_connect_timeout=connect_timeout,
                                socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0))
    pool.breaker = Breaker(breaker_seconds)
    pool.connection_class = _guarded(pool.connection_class, pool.breaker)
    return pool


def guarded_client(pool: GuardedPool) -> redis.Redis:
    return redis.Redis(connection_pool=pool)

"""Sick servers for fault scenarios: a TCP port that accepts connections and never answers (it
reads nothing and writes nothing), and a port where nothing listens."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SilentServer:
    """Accepts every connection, counts it, keeps it open, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    @property
    def connections(self) -> int:
        return len(self.accepted)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that accepts and never answers. Yields the port."""
    with silent_server() as server:
        yield server.port


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def in_thread(call, what: str, limit: float = 60):
    """`call()`'s result, run in a thread; fails (instead of hanging the suite) when it is still
    waiting after `limit` seconds: what the fault scenarios guard against."""
    results = []
    thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
    thread.start()
    thread.join(limit)
    assert results, f"{what} was still waiting after {limit:g} s"
    return results[0]

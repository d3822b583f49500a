"""A TCP proxy on loopback in front of a real server (the machine's PostgreSQL) that a fault
scenario cuts and restores, as if the server stopped or its network went silent.

    proxy = CuttableProxy(("127.0.0.1", 5432))
    ... point the processes at 127.0.0.1:proxy.port ...
    proxy.cut("refuse")  # every connection closed; new ones refused (the server stopped)
    proxy.cut("hang")    # every connection closed; new ones accepted and never answered
    proxy.restore()      # forwarding again, on the same port

Each forwarded connection is a pair of sockets pumped by two threads; `cut` shuts both down,
which wakes the threads. "refuse" closes the listening socket (a connect then gets
ECONNREFUSED) and `restore` binds the same port again.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MODES = ("open", "refuse", "hang")


class CuttableProxy:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.mode = "open"
        self.accepted = 0  # connections accepted, in every mode
        self.forwarded = 0  # of which forwarded to the target
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # both sockets of every forwarded connection
        self._held: list[socket.socket] = []  # accepted while hanging, never answered
        self._listener: socket.socket | None = None
        self._listen()

    # -- the listening socket --

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(256)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), name="proxy-accept",
                         daemon=True).start()

    def _unlisten(self) -> None:
        if self._listener is not None:
            _shut(self._listener)  # wakes the thread blocked in accept()
            self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                mode = self.mode
                if mode == "hang":
                    self._held.append(conn)
                    continue
            if mode == "refuse":  # accepted just before the cut closed the listener
                _shut(conn)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _shut(conn)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self.mode != "open":  # cut meanwhile
                    _shut(conn, upstream)
                    continue
                self.forwarded += 1
                self._open.update((conn, upstream))
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), name="proxy-pump",
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.discard(src)
            self._open.discard(dst)
        _shut(src, dst)

    # -- what a test does --

    def cut(self, mode: str = "refuse") -> None:
        """Close every connection; then refuse new ones ("refuse") or accept them and never
        answer ("hang")."""
        if mode not in ("refuse", "hang"):
            raise ValueError(f"cut mode {mode!r}: refuse or hang")
        with self._lock:
            previous, self.mode = self.mode, mode
            victims, self._open = list(self._open), set()
            held, self._held = (self._held, []) if mode == "refuse" else ([], self._held)
        if mode == "refuse":
            self._unlisten()
        elif previous == "refuse":
            self._listen()
        _shut(*victims, *held)

    def restore(self) -> None:
        """Forward again, on the same port; connections held by a hang are closed."""
        with self._lock:
            previous, self.mode = self.mode, "open"
            held, self._held = self._held, []
        _shut(*held)
        if previous == "refuse":
            self._listen()

    def close(self) -> None:
        with self._lock:
            self.mode = "refuse"
            victims, self._open = list(self._open), set()
            held, self._held = self._held, []
        self._unlisten()
        _shut(*victims, *held)

    def url(self, database_url: str) -> str:
        """`database_url` (a PostgreSQL URL) sent through this proxy."""
        import sqlalchemy as sa

        parsed = sa.engine.make_url(database_url)
        return parsed.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False)


def _shut(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


@contextmanager
def proxy_to(database_url: str) -> Iterator[CuttableProxy]:
    """A proxy in front of the server of `database_url` (PostgreSQL), closed afterwards."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(database_url)
    proxy = CuttableProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    try:
        yield proxy
    finally:
        proxy.close()

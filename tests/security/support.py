"""Loopback servers for the security suite."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_BODY = "internal-metadata-secret-3f9a"


class Recorder:
    """An HTTP server on 127.0.0.1 that records every request and answers `status`, with a body
    no outside party should ever see, and a `Location` when asked to redirect; with `drip`, the
    answer goes one byte at a time, `drip` seconds apart (a receiver that never quite stops)."""

    def __init__(self, status: int = 200, location: str | None = None,
                 drip: float = 0.0) -> None:
        self.hits: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.hits.append((self.command, self.path, dict(self.headers)))
                body = SECRET_BODY.encode()
                if drip:
                    self._drip(f"HTTP/1.1 {status} OK\r\nContent-Length: {len(body)}\r\n\r\n"
                               .encode() + body)
                    return
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drip(self, raw: bytes) -> None:
                try:
                    for byte in raw:
                        self.wfile.write(bytes([byte]))
                        time.sleep(drip)
                except OSError:  # the client hung up
                    pass

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

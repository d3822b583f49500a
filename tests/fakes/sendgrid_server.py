"""A loopback stand-in for SendGrid's v3 API, for tests and benchmarks.

It records every request and answers from a script of responses (default: 202 Accepted with
an X-Message-Id), optionally after a delay. A reply can be kept for the requests that match a
rule (`answer_when`, e.g. one recipient, or one kind of email), so that tests with several
emails in flight at once still know which one gets which answer. A reply with a `delay` longer
than the client's timeout is a provider that hangs: it has the email, but the client never hears
so. The `sendgrid` client is pointed at it with `SENDGRID_API_HOST`.

`GET /v3/scopes` answers as SendGrid does for `flask doctor`: the key's permissions
(`scopes`), or 401 when `api_keys` is a set that does not hold the key.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds to wait before answering (on top of the server's own delay)


def to(address: str) -> Callable[[Any], bool]:
    """A rule for `answer_when`: the email is addressed to `address`."""
    return lambda payload: any(
        recipient.get("email") == address
        for personalization in payload.get("personalizations", [])
        for recipient in personalization.get("to", []))


def category(name: str) -> Callable[[Any], bool]:
    """A rule for `answer_when`: the email carries SendGrid category `name`."""
    return lambda payload: name in payload.get("categories", [])


def custom_arg(name: str) -> Callable[[Any], bool]:
    """A rule for `answer_when`: the email carries custom arg `name` (e.g. `send_id`)."""
    return lambda payload: name in payload.get("custom_args", {})


def both(*rules: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda payload: all(rule(payload) for rule in rules)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    reply: Reply = field(default_factory=Reply)  # what the fake answered (or would have)
    at: float = 0.0  # time.time() of arrival
    method: str = "POST"

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        """The provider took the email (whether or not the client heard the answer)."""
        return 200 <= self.reply.status < 300

    @property
    def recipient(self) -> str:
        return self.json["personalizations"][0]["to"][0]["email"]


class FakeSendGrid:
    def __init__(self, delay: float = 0.0):
        self.requests: list[Recorded] = []
        self.script: list[Reply] = []
        self.rules: list[tuple[Callable[[Any], bool], list[Reply]]] = []
        self.delay = delay
        self.api_keys: set[str] | None = None  # None: any key is accepted
        self.scopes: list[str] = ["mail.send", "user.profile.read"]
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with fake._lock:  # recorded on arrival: a late answer is still a received email
                    reply = fake._next_reply(body)
                    fake.requests.append(Recorded(self.path, dict(self.headers), body, reply,
                                                  time.time()))
                if fake.delay or reply.delay:
                    time.sleep(fake.delay + reply.delay)
                headers = {"X-Message-Id": uuid.uuid4().hex[:22], **reply.headers} \
                    if reply.status == 202 else reply.headers
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                try:
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test): nothing to tell it

            def do_GET(self) -> None:
                reply = fake._read_reply(self.path, self.headers.get("Authorization", ""))
                with fake._lock:
                    fake.requests.append(Recorded(self.path, dict(self.headers), b"", reply,
                                                  time.time(), method="GET"))
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeSendGrid:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def answer_when(self, rule: Callable[[Any], bool], *replies: Reply) -> None:
        """Answer the next requests whose JSON payload matches `rule` with `replies`, in order
        (then as usual). Rules are tried before the script, oldest first."""
        with self._lock:
            self.rules.append((rule, list(replies)))

    def _next_reply(self, body: bytes) -> Reply:
        if self.rules:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {}
            for rule, replies in self.rules:
                if replies and rule(payload):
                    return replies.pop(0)
        return self.script.pop(0) if self.script else Reply()

    def _read_reply(self, path: str, authorization: str) -> Reply:
        if path.split("?")[0] != "/v3/scopes":
            return Reply(404, body=b'{"errors":[{"message":"not found"}]}')
        key = authorization.removeprefix("Bearer ")
        if not key or (self.api_keys is not None and key not in self.api_keys):
            return Reply(401, body=json.dumps({"errors": [{
                "field": None, "message": "authorization required"}]}).encode())
        return Reply(200, body=json.dumps({"scopes": self.scopes}).encode())

    @property
    def mail_sends(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/v3/mail/send")]

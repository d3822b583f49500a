"""Kindling's web process for fault scenarios: real gunicorn (`bench.lib.gunicorn_server`, on
loopback) with the test's settings, and a visitor who talks to it over HTTP: reads a landing
page once (as a CDN would keep it) and posts its form back, as a browser does."""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.lib import gunicorn_server
from tests.campaigns.helpers import script_values
from tests.nurture.worker_process import worker_env


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    text: str

    @property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


class Web:
    def __init__(self, base: str):
        self.base = base
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def request(self, method: str, path: str, body: str | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 60) -> Answer:
        """One request on a connection of its own. `timeout` bounds the wait (a socket
        timeout fails the test): what a fault scenario guards against is a request that
        hangs."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            text = response.read().decode(errors="replace")
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          text)
        except TimeoutError:
            raise AssertionError(f"{method} {path} was still waiting after {timeout:g} s") \
                from None
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def page_fields(self, slug: str) -> dict[str, str]:
        """The landing page's form as the page's script leaves it (read while the database
        answers; a CDN keeps serving it afterwards)."""
        page = self.get(f"/p/{slug}")
        assert page.status == 200, (page.status, page.text[:500])
        return script_values(page.text, slug=slug)

    def submit(self, slug: str, fields: Mapping[str, str], **values: str) -> Answer:
        """POST the form back, same origin, with `values` typed in."""
        body = urlencode({**fields, **values})
        return self.request("POST", f"/p/{slug}", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Origin": self.base,
            "Sec-Fetch-Site": "same-origin"})


@contextmanager
def web(app_config: Mapping[str, Any], logs: Path, *, workers: int = 2,
        threads: int | None = None, **env: str) -> Iterator[Web]:
    """gunicorn serving `wsgi:app` with the settings of `app_config` (and `env` on top),
    stopped afterwards. Its log is `logs/gunicorn-<port>.log`."""
    with gunicorn_server("wsgi:app", worker_env(app_config, **env), workers=workers,
                         threads=threads, ready_path="/login", log_dir=logs) as base:
        yield Web(base)

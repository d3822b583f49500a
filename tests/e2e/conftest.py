"""Real-browser tests: the app served on loopback, driven by Playwright in Debian's chromium.

CI installs chromium (`.ci/run`); elsewhere these tests skip when no chromium is found, unless
KINDLING_REQUIRE_BROWSER=1 makes a missing browser an error.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any, Self

import pytest
from werkzeug.serving import make_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class LiveServer:
    """A WSGI app served by Werkzeug in a thread on a free loopback port."""

    def __init__(self, wsgi_app: Any):
        self._server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("KINDLING_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed; run `apt-get install -y chromium` for browser tests")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def live_server(app_config: dict[str, Any], make_app: Any) -> Iterator[LiveServer]:
    """The app under test, served for real on loopback (its own database and instance folder)."""
    server_app = make_app(app_config)
    with LiveServer(server_app) as server:
        server_app.config["BASE_URL"] = server.url
        yield server


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Open pages in fresh browser contexts with options, e.g. `new_page(java_script_enabled=False)`.
    Every context is closed after the test."""
    contexts: list[Any] = []

    def factory(**context_options: Any) -> Any:
        context = browser.new_context(**context_options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def db_app(app_config: dict[str, Any], make_app: Any) -> Any:
    """An app on the live server's database (and instance folder): arrange data and check
    results with it, in `with db_app.app_context():` blocks."""
    return make_app(app_config)


def _static_wsgi(pages: dict[str, str]) -> Any:
    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = pages.get(environ.get("PATH_INFO") or "/")
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        data = body.encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(data))),
                                  ("Cache-Control", "no-store")])
        return [data]

    return wsgi


@pytest.fixture
def static_site() -> Iterator[Any]:
    """Serve fixed HTML pages (`{path: html}`) from another loopback port, i.e. another origin
    than the live server: a stand-in for a customer's site. Returns the running server."""
    servers: list[LiveServer] = []

    def factory(pages: dict[str, str]) -> LiveServer:
        server = LiveServer(_static_wsgi(pages)).__enter__()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def watched_live_server(app_config: dict[str, Any], make_app: Any) -> Iterator[LiveServer]:
    """Like `live_server`, and `server.answers` lists (method, path, status, Origin header) of
    every response: what the server answered even when the browser hides it (CORS)."""
    server_app = make_app(app_config)
    answers: list[tuple[str, str, int, str | None]] = []

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            answers.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                            int(status.split()[0]), environ.get("HTTP_ORIGIN")))
            return start_response(status, headers, exc_info)

        return server_app(environ, recording_start_response)

    with LiveServer(wsgi) as server:
        server_app.config["BASE_URL"] = server.url
        server.answers = answers  # type: ignore[attr-defined]
        yield server

"""Every gunicorn worker listens on a socket of its own (SO_REUSEPORT, app.gunicorn_conf), which
would let a second server on the same port share it: an old `make run` still running would
then answer half the requests with the old code. The second server refuses to start instead."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.nurture.worker_process import REPO, worker_env

pytestmark = pytest.mark.slow


def _gunicorn(app_config, port: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf",
               "--bind", f"127.0.0.1:{port}", "--workers", "1", "wsgi:app"]
    try:
        return subprocess.run(command, cwd=REPO, env=worker_env(app_config), timeout=30,
                              capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"gunicorn started on a port in use:\n{exc.stderr!r:.2000}") from None


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_second_server_on_a_port_in_use_refuses_to_start(app_config, reuse_port):
    listener = socket.socket()
    if reuse_port:  # as our own gunicorn workers listen
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        done = _gunicorn(app_config, port)
        assert done.returncode != 0
        assert f"127.0.0.1:{port} is already in use" in done.stderr, done.stderr
    finally:
        listener.close()

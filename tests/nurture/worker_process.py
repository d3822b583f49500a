"""Real RQ worker processes for fault tests: start `flask --app wsgi worker` against the test's
database and Redis, and kill it (work-horse included) with SIGKILL; plus a gate that holds one
request in the fake SendGrid after the provider has accepted it, so a kill lands mid-send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).parent / "flask"


def process_config(app_config: Mapping[str, Any], fast: Mapping[str, Any],
                   sendgrid_url: str) -> dict[str, Any]:
    """Settings for a test with real processes: `fast` written to the instance folder's
    kindling.cfg (worker and scheduler processes read it there), and SendGrid at the fake."""
    write_settings(app_config, fast)
    return {**app_config, **fast, "SENDGRID_API_KEY": "SG.test", "SENDGRID_API_HOST": sendgrid_url}


def write_settings(app_config: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Operator settings for the test's processes: the instance folder's kindling.cfg."""
    instance = Path(app_config["INSTANCE_PATH"])
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "kindling.cfg").write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))


def worker_env(app_config: Mapping[str, Any], **extra: str) -> dict[str, str]:
    """The environment a worker process needs: tests/conftest.py keeps these settings out of
    os.environ (tests pass them to create_app), so they are handed over explicitly."""
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app_config["REDIS_URL"],
        "INSTANCE_PATH": app_config["INSTANCE_PATH"],
        "SECRET_KEY": app_config["SECRET_KEY"],
        "KINDLING_ENV": app_config.get("KINDLING_ENV", "development"),
        "BASE_URL": app_config.get("BASE_URL", "http://kindling.test"),
        "MAIL_FROM": app_config.get("MAIL_FROM", "Kindling <hello@example.com>"),
        "POSTAL_ADDRESS": app_config.get("POSTAL_ADDRESS", "Test Co., 1 Test Street"),
        "PYTHONUNBUFFERED": "1",
    })
    if app_config.get("SENDGRID_API_KEY"):
        env["SENDGRID_API_KEY"] = app_config["SENDGRID_API_KEY"]
    if app_config.get("SENDGRID_API_HOST"):
        env["SENDGRID_API_HOST"] = app_config["SENDGRID_API_HOST"]
    env.update(extra)
    return env


class WorkerProcess:
    """`flask --app wsgi worker [--burst]` (or another command, e.g. `scheduler`) in a session
    (process group) of its own."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, burst: bool = False,
                 command: str = "worker"):
        self.log_path = log_path
        args = [str(FLASK), "--app", "wsgi", command] + (["--burst"] if burst else [])
        self._log = open(log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(args, cwd=REPO, env=dict(env), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker still running after {timeout}s:\n{self.log()}") from None

    def signal_all(self, signum: int) -> None:
        """Send `signum` to the worker and every process under it (a work-horse included)."""
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> list[int]:
        """SIGKILL the worker and every process under it (RQ's work-horse runs in a process
        group of its own, so killing the worker's group alone would leave it running).
        The group is stopped first so that no new work-horse is forked meanwhile. Returns the
        pids killed."""
        if self.proc.poll() is not None:
            self._log.close()
            return []
        try:
            os.killpg(self.proc.pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
        victims = [self.proc.pid, *descendants(self.proc.pid)]
        ours = os.getpgrp()
        for pid in victims:
            try:
                group = os.getpgid(pid)
                if group != ours:
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(10)
        self._log.close()
        return victims


def descendants(root: int) -> list[int]:
    """Pids of every live process below `root` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class HoldAfterAccept:
    """Make the fake SendGrid hold its answer to the `nth` mail send *after* recording it (the
    provider has accepted the email) until `release()`: the sender is then stuck waiting for the
    reply, which is where a kill makes a naive sender send the email again."""

    def __init__(self, fake: Any, nth: int, hold_seconds: float = 60):
        self.nth = nth
        self.arrived = threading.Event()
        self._release = threading.Event()
        self._count = 0
        self._lock = threading.Lock()
        gate = self
        base = fake.server.RequestHandlerClass

        class Held(base):  # type: ignore[misc, valid-type]
            def send_response(self, code: int, message: str | None = None) -> None:
                with gate._lock:
                    gate._count += 1
                    mine = gate._count
                if mine == gate.nth:
                    gate.arrived.set()
                    gate._release.wait(hold_seconds)
                super().send_response(code, message)

        fake.server.RequestHandlerClass = Held
        # The answer to a killed client may fail to write: that is the point, not an error.
        fake.server.handle_error = lambda request, client_address: None

    def release(self) -> None:
        self._release.set()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)

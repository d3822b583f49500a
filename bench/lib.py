"""Shared helpers for benchmark modules: result rows, the run context,
a gunicorn launcher and a ``wrk`` driver.

Rules every benchmark follows:

* traffic goes only to 127.0.0.1 (``gunicorn_server`` binds there and
  ``wrk`` refuses any other host);
* every external process is bounded in time (start-up poll, wrk timeout,
  SIGTERM then SIGKILL on shutdown);
* figures are reported as ratios against the baseline measured in the same
  run (``Context.baseline``), never as absolute timing assertions.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
BASELINE_APP = "bench.baseline_app:app"

STARTUP_TIMEOUT_S = 60.0  # a loaded machine boots gunicorn workers slowly
SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    ``ratio`` is measured / baseline (None when not meaningful);
    ``ok`` is True (PASS), False (FAIL) or None (informational, shown as "—").
    """

    figure: str
    target: str
    measured: str
    ratio: float | None
    ok: bool | None


@dataclass(frozen=True)
class WrkResult:
    """Parsed output of one ``wrk --latency`` run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx_3xx: int
    socket_errors: int
    requests: int
    # CPU milliseconds per request by program, on the whole machine, while wrk ran
    # (`cpu_by_program`): where a request's cost goes, the server's and the database's both.
    cpu_ms: dict[str, float] = field(default_factory=dict)

    def cpu_summary(self, top: int = 5) -> str:
        """"app 2.10, postgres 0.85, …" ms of CPU per request, the largest first."""
        largest = sorted(self.cpu_ms.items(), key=lambda item: -item[1])[:top]
        return ", ".join(f"{name} {ms:.2f}" for name, ms in largest if ms >= 0.01)

    def summary(self) -> str:
        """Short human-readable form for the "measured" column."""
        text = (f"{self.requests_per_s:,.0f} req/s, p50 {self.p50_ms:.1f} ms, "
                f"p99 {self.p99_ms:.1f} ms")
        if self.non_2xx_3xx or self.socket_errors:
            text += f" ({self.non_2xx_3xx} non-2xx/3xx, {self.socket_errors} socket errors)"
        return text


@dataclass
class Context:
    """State shared by all benchmark modules during one ``python -m bench`` run."""

    duration: int
    connections: int
    tmp: Path
    _baselines: dict[tuple[str, str | None, int | None, str | None], WrkResult] = field(default_factory=dict, repr=False)

    def baseline(self) -> WrkResult:
        """wrk result for ``GET /`` on the bare baseline app (measured once per run)."""
        return self.baseline_for("/")

    def baseline_for(self, path: str, script: str | None = None,
                     threads: int | None = None, config: str | None = None) -> WrkResult:
        """wrk result for ``path`` (and optional Lua ``script``) on the baseline app.

        The baseline app runs under gunicorn with 2 workers (and ``threads`` each, and the
        gunicorn ``config``, when given), exactly like the benchmarks compare against. Results
        are cached per (path, script, threads, config).
        """
        key = (path, script, threads, config)
        if key not in self._baselines:
            with gunicorn_server(BASELINE_APP, {}, workers=2, threads=threads, config=config,
                                 log_dir=self.tmp) as base:
                self._baselines[key] = self.wrk(base + path, script=script)
        return self._baselines[key]

    def wrk(self, url: str, script: str | None = None, threads: int = 2) -> WrkResult:
        """``wrk`` with this run's duration and connection count."""
        return wrk(url, self.duration, self.connections, threads=threads,
                   script=script, script_dir=self.tmp)


def post_form_script(body: str) -> str:
    """Lua script making wrk send ``body`` as a urlencoded POST form."""
    lua_body = body.replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{lua_body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )


def _scratch_dir() -> Path:
    """Fallback directory for logs and scripts when no run temp dir is given."""
    return Path(tempfile.gettempdir())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _answers_http(url: str) -> bool:
    """True once anything at ``url`` speaks HTTP (any status code counts)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the gunicorn master, then SIGKILL its whole process group if needed."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # own session, so this is only gunicorn
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)


def _reuses_port(config: str | None) -> bool:
    """Whether gunicorn config ``python:<module>`` sets ``reuse_port`` (a socket per worker)."""
    if not config or not config.startswith("python:"):
        return False
    import importlib

    return bool(getattr(importlib.import_module(config[len("python:"):]), "reuse_port", False))


def _listening(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (one per worker with SO_REUSEPORT)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:  # not Linux: only the first answer is waited for
        return 1 << 30
    local = f"0100007F:{port:04X}"
    return sum(1 for line in table if line.split()[1] == local and line.split()[3] == "0A")


@contextmanager
def gunicorn_server(
    app_spec: str,
    env: dict[str, str],
    workers: int = 2,
    threads: int | None = None,
    *,
    config: str | None = None,
    ready_path: str = "/",
    log_dir: Path | None = None,
) -> Iterator[str]:
    """Run ``gunicorn app_spec`` on 127.0.0.1 and yield its base URL (no trailing slash).

    ``env`` is added on top of the current environment; ``config`` is gunicorn's ``-c``
    (e.g. ``python:app.gunicorn_conf``, production's settings). The server is started
    from the repository root, polled at ``ready_path`` for up to STARTUP_TIMEOUT_S (and,
    when the config sets ``reuse_port``, until every worker listens on a socket of its own:
    the first one up would otherwise get every connection), and stopped (SIGTERM, then
    SIGKILL) when the block exits. Its output goes to ``log_dir/gunicorn-<port>.log``; the
    log is printed if it fails to start.
    """
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if not gunicorn.exists():
        raise RuntimeError(f"gunicorn not found at {gunicorn}; install it in this venv")
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    log_path = (log_dir or _scratch_dir()) / f"gunicorn-{port}.log"
    cmd = [str(gunicorn), app_spec, "--bind", f"{LOOPBACK}:{port}",
           "--workers", str(workers), "--log-level", "warning", "--graceful-timeout", "5"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if config is not None:
        cmd += ["-c", config]
    listeners = workers if _reuses_port(config) else 1

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **env},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers_http(base + ready_path) or _listening(port) < listeners:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                sys.stderr.write(f"--- {log_path} ---\n{log_path.read_text(errors='replace')}\n")
                raise RuntimeError(f"gunicorn {app_spec} did not answer on {base}{ready_path}")
            time.sleep(0.1)
        yield base
    finally:
        _stop(proc)


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM every process (workers, schedulers a benchmark started), then SIGKILL those
    still running after `timeout` seconds each."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    """Convert a wrk duration such as ``812.00us`` or ``1.20s`` to milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unrecognised wrk duration {text!r}")
    return float(match[1]) * _TIME_UNITS_MS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    """Parse the text printed by ``wrk --latency``."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests_per_s=float(rps[1]),
        p50_ms=_ms(p50[1]),
        p99_ms=_ms(p99[1]),
        non_2xx_3xx=int(bad[1]) if bad else 0,
        socket_errors=sum(int(n) for n in sock.groups()) if sock else 0,
        requests=int(total[1]),
    )


def wrk(
    url: str,
    duration: int,
    connections: int,
    threads: int = 2,
    script: str | None = None,
    *,
    script_dir: Path | None = None,
) -> WrkResult:
    """Drive ``url`` (127.0.0.1 only) with ``wrk --latency`` for ``duration`` seconds.

    ``script`` is Lua source (e.g. from ``post_form_script``); it is written to
    a file in ``script_dir`` (default: the system temp dir) and passed with ``-s``.
    """
    if urlsplit(url).hostname != LOOPBACK:
        raise ValueError(f"benchmarks only send traffic to {LOOPBACK}, not {url}")
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed: run `apt-get install -y wrk`")
    threads = max(1, min(threads, connections))
    cmd = [exe, "--latency", "-t", str(threads), "-c", str(connections),
           "-d", f"{duration}s", "--timeout", "5s"]
    if script is not None:
        script_path = (script_dir or _scratch_dir()) / f"wrk-{abs(hash(script)):x}.lua"
        script_path.write_text(script)
        cmd += ["-s", str(script_path)]
    cmd.append(url)
    before = cpu_by_program()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30,
                          check=False)
    used = cpu_by_program(before)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    result = parse_wrk(done.stdout)
    if not result.requests:
        return result
    return replace(result, cpu_ms={name: seconds * 1000 / result.requests
                                   for name, seconds in used.items()})


# Process names (/proc/PID/comm) shown under a plainer name; the rest keep theirs.
_PROGRAMS = {"postgres": "postgres", "redis-server": "redis", "wrk": "wrk",
             "gunicorn": "app", "python": "app", "python3": "app"}
_KERNEL = ("kworker", "ksoftirqd", "jbd2", "kswapd")  # the kernel's threads: writeback, I/O


def cpu_by_program(since: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds (user + system) used by each program on this machine: every live
    process's, from /proc, plus this process's reaped children's (wrk, once it has ended);
    this harness itself is left out. With `since` (an earlier reading): the difference."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        if stat.parent.name == str(os.getpid()):
            continue
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        program = _PROGRAMS.get(name) or ("kernel" if name.startswith(_KERNEL) else name)
        used[program] = used.get(program, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["wrk"] = used.get("wrk", 0.0) + children.ru_utime + children.ru_stime
    if since is None:
        return used
    return {name: seconds - since.get(name, 0.0) for name, seconds in used.items()
            if seconds - since.get(name, 0.0) > 0}

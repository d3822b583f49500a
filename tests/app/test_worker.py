"""The worker runs the short queues' jobs in its own process, on its warm database pool, and
the other queues' jobs in a forked work-horse; the queues are taken journeys-first."""

import os
import threading
import time

import sqlalchemy as sa
from rq import get_current_job
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus

from app import queue
from app.config import from_environ
from app.db import db
from app.jobs import job
from app.worker import KindlingWorker, run_worker

HERE = "tests.app.test_worker"


@job
def where() -> dict:
    """The process this job ran in, and the database session it used (its backend, on
    PostgreSQL), after a query."""
    db.session.execute(sa.text("SELECT 1"))
    backend = None
    if db.engine.dialect.name == "postgresql":
        backend = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
    return {"pid": os.getpid(), "backend": backend, "at": time.monotonic()}


def sleeps() -> None:
    time.sleep(10)


def _result(rq_job: Job) -> dict:
    rq_job.refresh()
    assert rq_job.get_status() == JobStatus.FINISHED, rq_job.latest_result()
    return rq_job.return_value()


def test_short_queues_run_in_the_worker_process_and_the_others_in_a_work_horse(app):
    # Enqueued in this order; the worker takes them by its queue order, and the default job's
    # work-horse is forked while the worker's pool holds the connection the intake job used.
    intake = queue.enqueue(f"{HERE}.where", queue="intake")
    default = queue.enqueue(f"{HERE}.where", queue="default")
    mail = queue.enqueue(f"{HERE}.where", queue="mail")
    first = queue.enqueue(f"{HERE}.where", queue="first-steps")

    run_worker(burst=True)

    ran = {name: _result(j) for name, j in
           (("intake", intake), ("default", default), ("mail", mail), ("first", first))}
    assert ran["intake"]["pid"] == ran["mail"]["pid"] == ran["first"]["pid"] == os.getpid()
    assert ran["default"]["pid"] != os.getpid()  # a forked work-horse
    # A journey under way (first-steps) goes before a new intake run, and both before the rest.
    assert ran["first"]["at"] < ran["intake"]["at"] < ran["default"]["at"] < ran["mail"]["at"]
    if db.engine.dialect.name == "postgresql":
        # The in-process jobs share one warm connection, which the work-horse never used.
        assert ran["intake"]["backend"] == ran["mail"]["backend"]
        assert ran["default"]["backend"] != ran["intake"]["backend"]


def test_an_in_process_job_past_its_timeout_fails_and_the_worker_goes_on(app):
    slow = queue.enqueue(f"{HERE}.sleeps", queue="intake", job_timeout=1)
    after = queue.enqueue(f"{HERE}.where", queue="intake")

    run_worker(["intake"], burst=True)

    slow.refresh()  # stopped by its timeout (it would otherwise finish, after 10 s)
    assert slow.get_status() == JobStatus.FAILED
    assert "JobTimeoutException" in slow.latest_result().exc_string
    assert _result(after)["pid"] == os.getpid()


def test_the_queues_and_which_run_in_process_come_from_the_environment():
    settings = from_environ({"RQ_QUEUES": "intake, mail ,,scoring",
                             "RQ_IN_PROCESS_QUEUES": "intake"})
    assert settings == {"RQ_QUEUES": ("intake", "mail", "scoring"),
                        "RQ_IN_PROCESS_QUEUES": ("intake",)}
    # A lone comma (an empty value means "not set"): no queue runs in process (README).
    assert from_environ({"RQ_IN_PROCESS_QUEUES": ","}) == {"RQ_IN_PROCESS_QUEUES": ()}



_handled = threading.Event()


@job
def stop_myself() -> str:
    """Ask RQ to stop this very job (`rq`'s stop-job command), and wait until the worker's
    command thread has handled the request."""
    current = get_current_job()
    assert current is not None
    send_stop_job_command(queue.connection(), current.id)
    assert _handled.wait(30), "the worker never handled the stop-job command"
    return "ran to its end"


def test_stop_job_for_an_in_process_job_signals_no_process(app, monkeypatch):
    """There is no work-horse to kill: RQ's Worker.kill_horse would SIGKILL the process group
    of pid 0, which is the worker's own (the worker, its scheduler, and whatever else shares
    its group). An in-process job cannot be stopped: it runs to its end or its timeout."""
    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: signalled.append((pgid, sig)))
    handle = KindlingWorker.handle_payload

    def handled(self, message):
        handle(self, message)
        _handled.set()

    monkeypatch.setattr(KindlingWorker, "handle_payload", handled)
    _handled.clear()
    stopped = queue.enqueue(f"{HERE}.stop_myself", queue="intake")
    after = queue.enqueue(f"{HERE}.where", queue="intake")

    run_worker(["intake"], burst=True)

    assert signalled == []
    assert _result(stopped) == "ran to its end"
    assert _result(after)["pid"] == os.getpid()

"""The RQ worker and the scheduler as Flask CLI commands, sharing the app's Redis."""

from __future__ import annotations

import importlib
import logging
import signal
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import click
import redis
from flask import current_app
from flask.cli import with_appcontext
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, Worker
from rq.cron import CronScheduler
from rq.defaults import DEFAULT_WORKER_TTL
from rq.job import Job
from rq.utils import import_attribute
from rq.worker import WorkerStatus
from rq.worker.base import SHUTDOWN_SIGNAL

from app import logs, queue
from app.db import db
from app.schedule import periodic_jobs

log = logging.getLogger(__name__)


# Waiting for Redis at start: the first pause, doubled after each try up to the last.
WAIT_FIRST_SECONDS = 0.5
WAIT_MAX_SECONDS = 30.0


def worker_connection():
    return queue.connect(queue.redis_url(current_app), for_worker=True)


def where(url: str) -> str:
    """Redis's address for a log line: host and port (or socket), never a password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"


def wait_for_redis(what: str, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once Redis answers. Until then, say so in one line and retry with a pause that
    doubles up to WAIT_MAX_SECONDS: a worker or scheduler started before Redis (or while it
    restarts) waits for it instead of dying with a traceback."""
    url = queue.redis_url(current_app)
    probe = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2,
                                 retry=Retry(NoBackoff(), 0))
    pause, waited = WAIT_FIRST_SECONDS, False
    try:
        while True:
            try:
                probe.ping()
                break
            except (redis.exceptions.RedisError, OSError) as exc:
                if not waited:
                    log.warning("%s: waiting for Redis at %s (%s); trying again with a growing "
                                "pause, up to %g s", what, where(url),
                                str(exc).splitlines()[0] or type(exc).__name__,
                                WAIT_MAX_SECONDS)
                    waited = True
                sleep(pause)
                pause = min(pause * 2, WAIT_MAX_SECONDS)
    finally:
        probe.close()
    if waited:
        log.warning("%s: Redis answers at %s; starting", what, where(url))


class KindlingWorker(Worker):
    """RQ's worker, running the jobs of `in_process` queues in its own process instead of a
    forked work-horse.

    A work-horse costs a fork, a new database connection and cold statement caches: about
    0.2 s a job, which at a burst of submits (an intake run, an enrollment and a first step per
    batch) is more than the jobs themselves, so the first nurture emails waited for the burst to
    end. The short jobs of the intake, first-steps, mail and tracking queues run here, on the
    warm pool (RQ's `SimpleWorker` does this for every queue); the long ones (imports, bulk
    actions, rebuilds, what-ifs) still get a work-horse, whose memory goes back when it ends.
    An in-process job keeps RQ's job timeout (the same SIGALRM the work-horse uses)."""

    in_process: frozenset[str] = frozenset()

    def execute_job(self, job: Job, queue: Queue) -> None:
        if queue.name not in self.in_process:
            super().execute_job(job, queue)
            return
        self.prepare_execution(job)
        self.perform_job(job, queue)
        self.set_state(WorkerStatus.IDLE)

    def get_heartbeat_ttl(self, job: Job) -> int:
        """An in-process job sends no heartbeat until it ends (no work-horse to watch): the
        one set as it starts covers its whole timeout, as in RQ's `SimpleWorker`."""
        if job.origin not in self.in_process:
            return super().get_heartbeat_ttl(job)
        if job.timeout == -1:
            return DEFAULT_WORKER_TTL
        return int(job.timeout or DEFAULT_WORKER_TTL) + 60

    def kill_horse(self, sig: signal.Signals = SHUTDOWN_SIGNAL) -> None:
        """Kill the work-horse, if there is one. During an in-process job there is none
        (`horse_pid` is 0), and RQ's `Worker.kill_horse` would signal the process group of
        pid 0: this worker's own (itself, its scheduler, whatever shares its group), with
        SIGKILL, on `rq`'s stop-job command. An in-process job cannot be stopped: it runs to
        its end or its timeout."""
        if self.horse_pid:
            super().kill_horse(sig)
            return
        if self._stopped_job_id is not None:
            log.warning("worker: job %s runs in the worker process and cannot be stopped; it "
                        "ends by itself or at its timeout", self._stopped_job_id)
            self._stopped_job_id = None  # not stopped: a failure is retried as usual


def run_worker(queues: list[str] | None = None, *, burst: bool = False) -> bool:
    """Work the queues (with RQ's scheduler for delayed and retried jobs) until stopped.

    Jobs of RQ_IN_PROCESS_QUEUES run in this process (`KindlingWorker`); the others in a forked
    work-horse, which never uses a connection of this process's pool (`app.db` refuses them
    across a fork). The job modules (RQ_PRELOAD_MODULES) are imported here, once, so each
    work-horse inherits them instead of importing them per job.
    """
    names = queues or list(current_app.config["RQ_QUEUES"])
    preload(current_app.config.get("RQ_PRELOAD_MODULES") or ())
    logs.quiet_periodic_jobs({item.job for item in periodic_jobs(current_app)})
    while True:
        wait_for_redis("worker")
        conn = worker_connection()
        db.session.remove()
        db.engine.dispose()
        worker = KindlingWorker([Queue(name, connection=conn) for name in names],
                                connection=conn)
        worker.in_process = frozenset(current_app.config["RQ_IN_PROCESS_QUEUES"])
        try:
            return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
        except redis.exceptions.ConnectionError as exc:
            if burst:
                raise
            log.warning("worker: lost Redis (%s); waiting for it again",
                        str(exc).splitlines()[0] or type(exc).__name__)


def preload(modules) -> None:
    """Import job modules before forking; one that fails to import is the job's problem (its
    work-horse reports the error), not the worker's."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            log.warning("worker: could not preload %s", name, exc_info=True)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--queue", "queues", multiple=True, help="Queue to work (repeatable); default all.")
@with_appcontext
def worker_command(burst: bool, queues: tuple[str, ...]) -> None:
    """Run an RQ worker (with the scheduler for delayed and retried jobs)."""
    run_worker(list(queues) or None, burst=burst)


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Enqueue the periodic jobs (outbox relay, nurture tick, ...). Run exactly one."""
    logs.quiet_periodic_jobs({item.job for item in periodic_jobs(current_app)})
    while True:
        wait_for_redis("scheduler")
        cron = CronScheduler(connection=worker_connection())
        for item in periodic_jobs(current_app):
            cron.register(import_attribute(item.job), queue_name=item.queue,
                          interval=item.interval, name=item.job)
        try:
            cron.start()
            return
        except redis.exceptions.ConnectionError as exc:
            log.warning("scheduler: lost Redis (%s); waiting for it again",
                        str(exc).splitlines()[0] or type(exc).__name__)

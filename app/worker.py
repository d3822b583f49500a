"""The RQ worker and the scheduler as Flask CLI commands, sharing the app's Redis."""

from __future__ import annotations

import importlib
import logging

import click
from flask import current_app
from flask.cli import with_appcontext
from rq import Queue, Worker
from rq.cron import CronScheduler
from rq.utils import import_attribute

from app import queue
from app.db import db
from app.schedule import periodic_jobs

log = logging.getLogger(__name__)


def worker_connection():
    return queue.connect(queue.redis_url(current_app), for_worker=True)


def run_worker(queues: list[str] | None = None, *, burst: bool = False) -> bool:
    """Work the queues (with RQ's scheduler for delayed and retried jobs) until stopped.

    Each job runs in a forked work-horse; the parent's database pool is emptied first so no
    connection is shared across the fork. The job modules (RQ_PRELOAD_MODULES) are imported
    here, once, so each work-horse inherits them instead of importing them per job.
    """
    conn = worker_connection()
    names = queues or list(current_app.config["RQ_QUEUES"])
    preload(current_app.config.get("RQ_PRELOAD_MODULES") or ())
    db.session.remove()
    db.engine.dispose()
    worker = Worker([Queue(name, connection=conn) for name in names], connection=conn)
    return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


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
    cron = CronScheduler(connection=worker_connection())
    for item in periodic_jobs(current_app):
        cron.register(import_attribute(item.job), queue_name=item.queue, interval=item.interval,
                      name=item.job)
    cron.start()

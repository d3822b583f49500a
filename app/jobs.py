"""How a function becomes an RQ job: ids in, and an app context (and database session) of its own.

Jobs receive ids, never ORM objects. RQ delivers at least once, so every job must be safe to
run twice; the database, not Redis, says whether its work is already done.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from rq.timeouts import JobTimeoutException

from app.db import db

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

_process_app: Flask | None = None


def _app() -> Flask:
    """The app of this process: the worker command's, or one built from the environment."""
    global _process_app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]
    if _process_app is None:
        from app import create_app

        _process_app = create_app()
    return _process_app


def job(func: F) -> F:
    """Run `func` in its own app context (and so its own database session)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app = _app()
        with app.app_context():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# RQ ends a job that runs past its timeout by raising this inside it (from SIGALRM). It is an
# `Exception`, so a catch-all that keeps one item's failure from sinking the rest catches it too,
# and the job then runs on past its limit: such a catch-all re-raises it first
# (`except JobTimeout: raise`), and the job ends with its transaction rolled back.
JobTimeout = JobTimeoutException


class RetryLater(Exception):
    """Raised by an outbox job whose work must be tried again later (a provider that refused
    for now): the outbox schedules the next attempt after its back-off, and never sooner than
    `after` seconds when the job knows a time (a provider's Retry-After)."""

    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.after = after


def each(ids: Iterable[int], func: Callable[[int], Any]) -> list[Any]:
    """Run `func(id)` for every id of a batch job; returns the results. One that fails does
    not stop the others (its transaction is rolled back); the first failure is raised at the
    end, so the outbox retries the batch, and `func` (safe to run twice) finds the ones done.
    `RetryLater` (a provider asked to wait) stops the batch at once: the rest waits too; so
    does RQ's timeout (`JobTimeout`)."""
    results, failed = [], None
    for item in ids:
        try:
            results.append(func(item))
        except (RetryLater, JobTimeout):
            raise
        except Exception as exc:
            db.session.rollback()
            log.exception("batch job: %s(%s) failed; the batch is retried", func.__name__, item)
            failed = failed or exc
    if failed is not None:
        raise failed
    return results

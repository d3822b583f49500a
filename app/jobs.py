"""How a function becomes an RQ job: ids in, and an app context (and database session) of its own.

Jobs receive ids, never ORM objects. RQ delivers at least once, so every job must be safe to
run twice; the database, not Redis, says whether its work is already done.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context

F = TypeVar("F", bound=Callable[..., Any])

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


class RetryLater(Exception):
    """Raised by an outbox job whose work must be tried again later (a provider that refused
    for now): the outbox schedules the next attempt after its back-off, and never sooner than
    `after` seconds when the job knows a time (a provider's Retry-After)."""

    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.after = after

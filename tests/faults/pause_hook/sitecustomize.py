"""Loaded by a test's worker process only (its PYTHONPATH starts with this folder, see
`tests.faults.pause.paused_at`): freezes the process at one chosen SQL statement, so that a
test can kill it at a known point inside a transaction instead of polling for the moment.

KINDLING_TEST_PAUSE_AT: a piece of SQL (case-insensitive); KINDLING_TEST_PAUSE_TRANSACTION:
in the how-many-th transaction that runs such a statement to stop; KINDLING_TEST_PAUSE_MARKER:
a file written (with the pid) once stopped there. The statement does not run: the process
sleeps until it is killed."""

from __future__ import annotations

import os
import time

_AT = os.environ.get("KINDLING_TEST_PAUSE_AT", "").lower()

if _AT:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _NTH = int(os.environ.get("KINDLING_TEST_PAUSE_TRANSACTION", "1"))
    _MARKER = os.environ["KINDLING_TEST_PAUSE_MARKER"]
    _seen: list[object] = []  # the transactions that ran the statement (kept: ids not reused)

    @event.listens_for(Engine, "before_cursor_execute")
    def _pause(conn, cursor, statement, parameters, context, executemany):
        if _AT not in statement.lower():
            return
        transaction = conn.get_transaction()
        if not any(seen is transaction for seen in _seen):
            _seen.append(transaction)
        if len(_seen) < _NTH:
            return
        with open(_MARKER, "w") as marker:
            marker.write(str(os.getpid()))
        while True:
            time.sleep(1)

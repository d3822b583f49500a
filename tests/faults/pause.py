"""Freeze a test's worker process at a chosen SQL statement (tests/faults/pause_hook)."""

from __future__ import annotations

import os
from pathlib import Path

HOOK = Path(__file__).with_name("pause_hook")


def paused_at(statement: str, transaction: int, marker: Path) -> dict[str, str]:
    """Environment for a process that stops before running `statement` in the
    `transaction`-th transaction that runs it, and then writes `marker`."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{HOOK}{os.pathsep}{path}" if path else str(HOOK),
            "KINDLING_TEST_PAUSE_AT": statement,
            "KINDLING_TEST_PAUSE_TRANSACTION": str(transaction),
            "KINDLING_TEST_PAUSE_MARKER": str(marker)}

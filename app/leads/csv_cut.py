"""Cutting a CSV file Kindling writes back to the rows a job committed: a redelivered job (RQ
delivers at least once) then appends its rows once, not again (the bulk export, the import's
report of rejected rows)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any


def cut_csv(path: str, keep: Callable[[list[str]], bool]) -> None:
    """Cut the CSV file at `path` before its first data row that `keep` refuses, or that
    was not written whole (no line end: the writer was killed mid-row). The header stays."""
    kept = consumed = 0
    whole = True
    with open(path, "rb") as raw:
        def lines() -> Any:
            nonlocal consumed, whole
            for line in raw:
                consumed += len(line)
                whole = line.endswith(b"\n")
                yield line.decode("utf-8", errors="replace")

        for number, row in enumerate(csv.reader(lines())):
            if not whole or (number and not keep(row)):
                break
            kept = consumed
    with open(path, "r+b") as out:
        out.truncate(kept)

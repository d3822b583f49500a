"""Baseline: a bare Flask route under gunicorn (2 workers), driven by wrk.

Every other figure is a ratio against this number, measured in the same run.
"""

from __future__ import annotations

from bench.lib import Context, Row


def run(ctx: Context) -> list[Row]:
    base = ctx.baseline()
    return [
        Row(
            figure="baseline: bare Flask GET / (gunicorn, 2 workers)",
            target="—",
            measured=base.summary(),
            ratio=1.0,
            ok=None,
        )
    ]

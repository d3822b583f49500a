"""`flask scores rebuild`: rescore every lead with the active rules."""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from nurture.scoring import rebuild as rebuild_module

scores = AppGroup("scores", help="Lead scores: recompute after a rules change.")


@scores.command("rebuild")
@click.option("--batch-size", default=rebuild_module.BATCH_SIZE, show_default=True,
              help="Leads read and written per batch.")
def rebuild_command(batch_size: int) -> None:
    """Recompute fit and engagement of every lead from the event log (moves to MQL too)."""
    started = time.monotonic()
    with click.progressbar(length=rebuild_module.count_leads(), label="Rescoring leads",
                           show_pos=True) as bar:
        stats = rebuild_module.rebuild(batch_size=batch_size, progress=bar.update)
    elapsed = max(time.monotonic() - started, 1e-6)
    click.echo(f"Rescored {stats.leads} leads ({stats.events} events, "
               f"{stats.events / elapsed:,.0f} events/s) with rules v{stats.version}: "
               f"{stats.changed} changed, {stats.promoted} moved to MQL.")

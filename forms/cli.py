"""`flask intake …`: the operator's view of the intake table and the spill journal."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from app.db import db
from app.doctor import OK, WARN, Check, add_check
from forms.models import Intake

intake_cli = AppGroup("intake", help="Submits waiting to become leads (the intake processor).")


@intake_cli.command("process")
def process_command() -> None:
    """Replay the spill journal, then turn every new intake row into leads, now."""
    from forms import processor, spill

    replayed = spill.replay()
    taken = processor.drain()
    click.echo(f"{replayed} spilled submit(s) replayed; {taken} intake row(s) processed.")


@intake_cli.command("status")
def status_command() -> None:
    """Rows by status, the oldest waiting row, failed rows and the spill journal."""
    from forms import spill

    counts = {status: n for status, n in db.session.execute(
        sa.select(Intake.status, sa.func.count()).group_by(Intake.status))}
    oldest = db.session.scalar(sa.select(sa.func.min(Intake.received_at))
                               .where(Intake.status == "new"))
    click.echo(f"new: {counts.get('new', 0)}  done: {counts.get('done', 0)}  "
               f"failed: {counts.get('failed', 0)}  oldest new: {oldest or '—'}")
    for row in db.session.scalars(sa.select(Intake).where(Intake.status == "failed")
                                  .order_by(Intake.received_at).limit(20)):
        click.echo(f"failed {row.id} ({row.received_at:%Y-%m-%d %H:%M}): {row.error}")
    click.echo(f"spill journal: {'submits waiting' if spill.waiting() else 'empty'}")
    aside = spill.refused()
    if aside:
        click.echo(f"spill journal: {aside} set aside in {spill.FOLDER}/{spill.REFUSED_FOLDER}/ "
                   "(the database refuses them; the log says why): look at them, fix them, then run `flask intake retry-refused`")


@intake_cli.command("retry-refused")
def retry_refused_command() -> None:
    """Replay the submits the spill journal set aside, once what refused them is fixed."""
    from forms import spill

    retried, again = spill.retry_refused()
    click.echo(f"{retried} set-aside submit(s) retried: {retried - again} replayed, "
               f"{again} set aside again" + (" (the log says why)" if again else ""))


def check_spill(app: Flask) -> Check:
    """`flask doctor`: submits the spill journal set aside wait for a person."""
    from forms import spill

    name = "intake spill"
    try:
        aside, waiting = spill.refused(), spill.waiting()
    except OSError as exc:
        return Check(name, WARN, f"the spill journal cannot be read: {exc}")
    if aside:
        return Check(name, WARN, f"{aside} spilled submit(s) set aside in "
                                 f"{spill.folder() / spill.REFUSED_FOLDER}: the database refuses "
                                 "them (the log says why). Fix them, then run `flask intake retry-refused`")
    if waiting:
        return Check(name, OK, "submits wait in the journal; the intake processor replays them")
    return Check(name, OK, "empty")


def init_app(app: Flask) -> None:
    app.cli.add_command(intake_cli)
    add_check(app, check_spill)

"""`flask --app wsgi privacy ...`: access and erasure requests, retention."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

privacy_cli = AppGroup("privacy", help="Access and erasure requests, retention.")


@privacy_cli.command("export")
@click.argument("email")
def export_command(email: str) -> None:
    """Everything about the person with EMAIL, as JSON on standard output
    (format: docs/privacy-export.md)."""
    from app.privacy.export import NoSuchPerson, export, find_person

    try:
        identity, lead = find_person(email)
    except NoSuchPerson as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    json.dump(export(lead, identity), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


@privacy_cli.command("erase")
@click.argument("email")
@click.option("--reason", required=True, help="Why (kept in the audit row; no personal data).")
def erase_command(email: str, reason: str) -> None:
    """Erase the person with EMAIL from every table, file and queue; keep totals."""
    from app.privacy.erase import erase
    from app.privacy.export import NoSuchPerson

    try:
        audit = erase(email, actor="cli", reason=reason)
    except NoSuchPerson as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    parts = ", ".join(f"{name} {count}" for name, count in sorted(audit.removed.items()))
    click.echo(f"Erased (audit #{audit.id}): {parts or 'the profile only'}.")


@privacy_cli.command("prune")
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
def prune_command(dry_run: bool) -> None:
    """Apply the retention settings now: old events (after rolling them up), IP addresses,
    raw submission values. Resumable: run it again to continue."""
    from app.privacy.retention import SettingError, prune

    try:
        report = prune(dry_run=dry_run)
    except SettingError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for line in report.lines():
        click.echo(line)


def init_app(app: Flask) -> None:
    app.cli.add_command(privacy_cli)

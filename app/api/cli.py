"""`flask --app wsgi api-token create|list|revoke`: tokens for the REST API, from a shell."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.api import tokens
from app.api.models import SCOPES, ApiToken
from app.auth.models import find_user_by_email
from app.db import db

api_token_cli = AppGroup("api-token", help="Create, list and revoke REST API tokens.")


@api_token_cli.command("create")
@click.argument("email")
@click.option("--scope", type=click.Choice(SCOPES), default="read", show_default=True)
@click.option("--name", required=True, help="What will use it, e.g. 'Warehouse sync'.")
def create(email: str, scope: str, name: str) -> None:
    """Make a token acting as the user EMAIL; it is printed once, never again."""
    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    try:
        row, token = tokens.issue(user, name, scope)
    except tokens.TokenError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Token #{row.id} “{row.name}” ({scope}) for {user.email}. "
               "Copy it now: it is not shown again.", err=True)
    click.echo(token)


@api_token_cli.command("list")
def list_tokens() -> None:
    """Every token: id, prefix, scope, user, name, last use, and whether it is revoked."""
    for row in tokens.tokens_of():
        state = "revoked" if row.revoked_at else "active"
        used = row.last_used_at.strftime("%Y-%m-%d %H:%M") if row.last_used_at else "never"
        click.echo(f"{row.id:>4}  {row.prefix}…  {row.scope:<5}  {state:<7}  "
                   f"{row.user.email}  {row.name}  (last used {used})")


@api_token_cli.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (from `list`): it stops working at once."""
    row = db.session.get(ApiToken, token_id)
    if row is None:
        raise click.ClickException(f"No token #{token_id}.")
    if not tokens.revoke(row):
        click.echo(f"Token #{token_id} was already revoked.")
        return
    db.session.commit()
    click.echo(f"Revoked token #{token_id} “{row.name}”.")

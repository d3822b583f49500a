"""`flask seed-demo`: a demo workspace a newcomer can click through after `make run`.

Idempotent: running it again finds what it made before. Every capability adds a seeder with
`add_seeder`, so the demo grows with the product.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.auth.models import Role, create_user, find_user_by_email
from app.db import db, utcnow
from app.leads.service import record_event, upsert_lead

DEMO_PASSWORD = "kindling-demo"
DEMO_USERS = [
    ("admin@example.com", "Ada Admin", Role.ADMIN),
    ("marketer@example.com", "Mia Marketer", Role.MARKETER),
    ("sales@example.com", "Sam Sales", Role.SALES),
]
# A former colleague, deactivated: listed as inactive in Users, refused at sign-in.
DEMO_FORMER_USER = ("former.rep@example.com", "Fred Former", Role.SALES)
DEMO_LEADS = [
    ("dana.director@acme-industrial.example.com", {"first_name": "Dana", "last_name": "Okafor",
     "company": "Acme Industrial", "job_title": "Director of Operations", "country": "GB"}),
    ("lee@brightlabs.example.com", {"first_name": "Lee", "last_name": "Chen",
     "company": "Bright Labs", "job_title": "Marketing Manager", "country": "US"}),
    ("sofia@gmail.com", {"first_name": "Sofía", "last_name": "Ruiz", "country": "ES"}),
]


def add_seeder(app: Flask, seeder: Callable[[], list[str]]) -> None:
    """Register a seeder; it returns lines to print (URLs, what it made)."""
    app.extensions.setdefault("seeders", []).append(seeder)


def seed_core() -> list[str]:
    lines = []
    for email, name, role in DEMO_USERS:
        if find_user_by_email(email) is None:
            create_user(email, DEMO_PASSWORD, role, name=name)
    email, name, role = DEMO_FORMER_USER
    if find_user_by_email(email) is None:
        create_user(email, DEMO_PASSWORD, role, name=name).deactivate()
    now = utcnow()
    for index, (email, values) in enumerate(DEMO_LEADS):
        result = upsert_lead(email, values, source="demo seed")
        if result.created:
            lead = result.lead
            lead.created_at = now - timedelta(days=10 - index)
            record_event(lead, "page_viewed", url="/pricing", occurred_at=now - timedelta(days=3))
            record_event(lead, "email_opened", occurred_at=now - timedelta(days=2), is_bot=True,
                         bot_reason="Apple Mail privacy proxy")
    db.session.commit()
    base = current_app.config["BASE_URL"]
    lines.append(f"Admin: {base}/login")
    for email, _, role in DEMO_USERS:
        lines.append(f"  {role.value:<9} {email} / {DEMO_PASSWORD}")
    lines.append(f"  Forgot a password? {base}/password-reset (the link arrives in the Outbox); "
                 f"admins edit and deactivate users at {base}/admin/users "
                 f"({DEMO_FORMER_USER[0]} is deactivated)")
    return lines


def run_seeders(app: Flask) -> list[str]:
    lines: list[str] = []
    for seeder in [seed_core] + list(app.extensions.get("seeders", [])):
        lines.extend(seeder())
        db.session.commit()
    return lines


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo workspace: users, a campaign, leads with history."""
    if current_app.config["KINDLING_ENV"] == "production":
        raise click.ClickException("seed-demo refuses to run in production (demo passwords).")
    for line in run_seeders(current_app):
        click.echo(line)

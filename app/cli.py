"""Operator commands: `flask --app wsgi <command>`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.auth.models import Role, create_user, find_user_by_email
from app.db import db


@click.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default="")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def create_user_command(email: str, role: str, name: str, password: str) -> None:
    """Create an admin user (roles: admin, marketer, sales)."""
    if find_user_by_email(email):
        raise click.ClickException(f"A user with email {email} already exists.")
    if len(password) < 10:
        raise click.ClickException("The password must be at least 10 characters.")
    create_user(email, password, role, name=name)
    db.session.commit()
    click.echo(f"Created {role} {email.strip().lower()}.")


@click.command("doctor")
@with_appcontext
def doctor_command() -> None:
    """Check database, migrations, Redis, workers and mail; exit 1 when something is wrong."""
    from app.doctor import FAIL, run_checks

    results = run_checks(current_app)
    width = max(len(r.name) for r in results)
    for r in results:
        click.echo(f"{r.status:<4}  {r.name:<{width}}  {r.detail}")
    failed = [r.name for r in results if r.status == FAIL]
    if failed:
        click.echo(f"\n{len(failed)} problem(s): {', '.join(failed)}.")
        sys.exit(1)
    click.echo("\nAll good.")


@click.command("run-all")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@with_appcontext
def run_all_command(host: str, port: int) -> None:
    """Web, worker and scheduler in one foreground command (Ctrl-C stops all). For development."""
    from app import queue

    env = dict(os.environ)
    env["REDIS_URL"] = queue.redis_url(current_app)  # the children share this embedded server
    env.setdefault("BASE_URL", f"http://{host}:{port}")
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    commands = {
        "web": [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf",
                "--bind", f"{host}:{port}", "--workers", "2", "--threads", "4", "wsgi:app"],
        "worker": flask + ["worker"],
        "scheduler": flask + ["scheduler"],
    }
    procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    click.echo(f"\nKindling is running at http://{host}:{port}/  (Ctrl-C stops web, worker and scheduler)\n")
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    click.echo(f"{name} exited with {proc.returncode}; stopping the others.", err=True)
                    stopping = True
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.time() + 10
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()


def init_app(app: Flask) -> None:
    from app import schedule
    from app.seed import seed_demo_command
    from app.worker import scheduler_command, worker_command

    schedule.init_app(app)
    for command in (create_user_command, doctor_command, run_all_command, seed_demo_command,
                    worker_command, scheduler_command):
        app.cli.add_command(command)

"""Periodic jobs, declared as data. `flask scheduler` enqueues them with RQ's CronScheduler.

Run exactly one scheduler per deployment; every periodic job is idempotent anyway, so a second
one by mistake costs work, not correctness. Feature packages add theirs with `add_periodic`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask


@dataclass(frozen=True)
class Periodic:
    job: str  # dotted path
    interval: int  # seconds
    queue: str = "default"


def add_periodic(app: Flask, job: str, interval: int, queue: str = "default") -> None:
    app.extensions.setdefault("periodic", []).append(Periodic(job, interval, queue))


def periodic_jobs(app: Flask) -> list[Periodic]:
    return list(app.extensions.get("periodic", []))


def init_app(app: Flask) -> None:
    add_periodic(app, "app.outbox.relay", int(app.config["OUTBOX_RELAY_INTERVAL"]))

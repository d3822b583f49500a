"""The tracking hits' buffer: opens and clicks wait in this Redis list for the batch writer
(`nurture.tracking.writer`). The machinery (never waiting on Redis, memory, spill files) is
`app.pushbuffer`'s."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from app import pushbuffer
from app.pushbuffer import Buffer

KEY = "kindling:tracking:events"
SPILL_FOLDER = "tracking-spill"


def get(app: Flask | None = None) -> Buffer:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return pushbuffer.for_app(app, KEY, SPILL_FOLDER, "tracking")


def push(event: dict[str, Any]) -> bool:
    return get().push(event)


def spill_dir(app: Flask) -> str:
    return get(app).spill_dir()


def reload_spilled(app: Flask, conn) -> int:
    """Hand spilled files back to Redis (the batch writer calls this). Returns events moved."""
    return get(app).reload_spilled(conn)

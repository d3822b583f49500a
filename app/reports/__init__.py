"""Reports: placeholder during development."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from app.reports import models as _models  # noqa: F401

"""The sales blueprint; view modules attach their routes to it."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sales", __name__, url_prefix="/sales")

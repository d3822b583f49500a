"""`/api/v1/docs`: Swagger UI over `/api/v1/openapi.json`, served from our own files.

Swagger UI's files come from the pinned `swagger-ui-py` package (Swagger UI 5, which reads
OpenAPI 3.1); the page and its starter script are ours. Nothing loads from a CDN, and no inline
script runs (the page works under a strict Content-Security-Policy)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from flask import Blueprint, render_template, send_from_directory

from app.api.framework import PREFIX

bp = Blueprint("api_docs", __name__, url_prefix=PREFIX + "/docs")
SWAGGER_FILES = Path(swagger_ui.__file__).parent / "static"
SERVED = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                    "favicon-32x32.png", "favicon-16x16.png", "index.css"})


@bp.route("/")
def docs():
    return render_template("api/docs.html")


@bp.route("/files/<name>")
def files(name: str):
    if name not in SERVED:
        return ("Not found", 404)
    return send_from_directory(SWAGGER_FILES, name, max_age=86400)

"""Bare Flask app (no extensions) used as the benchmark baseline.

Run under gunicorn as ``bench.baseline_app:app``. Each route is the cheapest
possible version of something Kindling does, so Kindling's own routes can be
reported as a ratio against it.
"""

from __future__ import annotations

from flask import Flask, Response, request

# A 1x1 transparent GIF, 43 bytes: header, logical screen descriptor with a
# two-colour table, graphic control extension marking colour 0 transparent,
# one image descriptor with its LZW data, and the trailer.
PIXEL_GIF = (
    b"GIF89a"
    b"\x01\x00\x01\x00\x80\x00\x00"
    b"\x00\x00\x00\xff\xff\xff"
    b"\x21\xf9\x04\x01\x00\x00\x00\x00"
    b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"
    b"\x02\x02\x44\x01\x00"
    b"\x3b"
)
assert len(PIXEL_GIF) == 43

NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}

app = Flask(__name__)


@app.get("/")
def index() -> Response:
    return Response("kindling baseline\n", mimetype="text/plain")


@app.get("/pixel.gif")
def pixel() -> Response:
    return Response(PIXEL_GIF, mimetype="image/gif", headers=NO_CACHE)


@app.post("/submit")
def submit() -> Response:
    fields = request.form  # parse the urlencoded body, as a real form handler would
    return Response(f"ok {len(fields)}\n", mimetype="text/plain")

"""A path segment in a URL rule (`<key>`, `<slug>`, `<token>`) never holds a NUL character:
an address such as `/p/%00` or `/api/forms/<key>%00` matches no rule and answers 404 before
any view or error handler sees it. PostgreSQL refuses a NUL in a query's text, so without
this every view that looks a segment up would need its own check."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import Map
from werkzeug.routing.converters import UnicodeConverter


class SegmentConverter(UnicodeConverter):
    """Werkzeug's default (`string`) converter, without NUL."""

    def __init__(self, map: Map, minlength: int = 1, maxlength: int | None = None,
                 length: int | None = None) -> None:
        super().__init__(map, minlength, maxlength, length)
        self.regex = self.regex.replace("[^/]", r"[^/\x00]", 1)


def init_app(app: Flask) -> None:
    """Before any rule is added (rules take their converter when they are added)."""
    app.url_map.converters["default"] = SegmentConverter
    app.url_map.converters["string"] = SegmentConverter

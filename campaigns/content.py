"""Marketer-written Markdown turned into HTML that is safe to put on a public page."""

from __future__ import annotations

from functools import lru_cache

import markdown
import nh3
from markupsafe import Markup

EXTENSIONS = ["extra", "sane_lists"]


def render_markdown(text: str | None) -> Markup:
    """Cached per text: a page's body is the same on every view until a marketer edits it, and
    the result depends on nothing else. See `_render`."""
    return _render(text or "")


@lru_cache(maxsize=512)
def _render(text: str) -> Markup:
    """Markdown → HTML → sanitised by nh3 (no script, no event handlers, no javascript: URLs).

    Raw HTML in the Markdown is allowed through Markdown and then cleaned, so a marketer can use
    simple tags, never active content."""
    html = markdown.markdown(text, extensions=EXTENSIONS, output_format="html")
    return Markup(nh3.clean(html, url_schemes={"http", "https", "mailto", "tel"}))

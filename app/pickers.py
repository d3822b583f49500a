"""Pickers: choose a campaign, a form, an email or a lead by its name, never by typing an id.

Each package registers the things it owns (`add_picker`); the core never imports a feature.
The `picker` macro (templates/_picker.html) shows a plain <select> when the list is small, so
it works without JavaScript; a longer list becomes a text box whose suggestions come from the
staff-only JSON endpoint `/admin/api/pick/<kind>?q=…` (static/admin.js fills a <datalist>).
Whatever ends up in the box — an id, "#12", a suggestion ("Spring launch (#12)"), or an exact
name or email — is turned back into an id by `resolve`, which says plainly when nothing matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, current_app, g, jsonify, request, url_for

from app.auth.roles import staff_required
from app.db import db

SELECT_MAX = 60  # up to this many choices: a plain <select>; more: a search box
# (the PICKER_SELECT_MAX setting overrides it)
SUGGESTIONS = 20  # suggestions per request of the search box
_ID = re.compile(r"#?\s*(\d{1,12})")
_TRAILING_ID = re.compile(r"\(#(\d{1,12})\)\s*$")

bp = Blueprint("pickers", __name__, url_prefix="/admin/api/pick")


@dataclass(frozen=True)
class Option:
    id: int
    label: str

    @property
    def text(self) -> str:
        """What the search box holds once this option is chosen."""
        return f"{self.label} (#{self.id})"


@dataclass(frozen=True)
class Picker:
    kind: str
    noun: str  # "campaign": used in messages ("No campaign matches …")
    search: Callable[[str, int], list[Option]]  # (text, limit); "" lists the first ones
    lookup: Callable[[Sequence[int]], dict[int, str]]  # labels of these ids (missing: absent)
    exact: Callable[[str], int | None]  # the id a whole name (or email) names, if exactly one


class PickError(ValueError):
    """Typed text that names nothing; the message is for the person who typed it."""


def add_picker(app: Flask, picker: Picker) -> None:
    app.extensions.setdefault("pickers", {})[picker.kind] = picker


def get(kind: str) -> Picker | None:
    return current_app.extensions.get("pickers", {}).get(kind)


def named(model: Any, label: Any, *, order_by: Any = None,
          where: Any = None) -> tuple[Callable, Callable, Callable]:
    """search, lookup and exact for a table with a name column (`label`), e.g. campaigns."""
    order = order_by if order_by is not None else label

    def base(*columns: Any) -> sa.Select:
        query = sa.select(*columns)
        return query.where(where) if where is not None else query

    def search(text: str, limit: int) -> list[Option]:
        query = base(model.id, label)
        if text:
            query = query.where(label.icontains(text, autoescape=True))
        rows = db.session.execute(query.order_by(order, model.id).limit(limit)).all()
        return [Option(row[0], row[1]) for row in rows]

    def lookup(ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        return dict(db.session.execute(base(model.id, label).where(model.id.in_(ids))).all())

    def exact(text: str) -> int | None:
        ids = db.session.scalars(base(model.id).where(sa.func.lower(label) == text.lower())
                                 .limit(2)).all()
        return ids[0] if len(ids) == 1 else None

    return search, lookup, exact


def resolve(kind: str, text: Any, *, must_exist: bool = True) -> int | None:
    """The id that `text` names: "12", "#12", "Spring launch (#12)", or an exact name.
    None for empty text. Raises PickError when nothing matches (or, with `must_exist`, when
    the id is not there); without `must_exist` a bare id is taken as it is (a rule may name
    something deleted since)."""
    text = "" if text is None else str(text).strip()
    if not text:
        return None
    picker = get(kind)
    noun = picker.noun if picker else kind
    match = _ID.fullmatch(text) or _TRAILING_ID.search(text)
    if match:
        number = int(match.group(1))
        if must_exist and picker is not None and number not in picker.lookup([number]):
            raise PickError(f"There is no {noun} #{number}.")
        return number
    found = picker.exact(text) if picker else None
    if found is None:
        raise PickError(f"No {noun} matches “{text}”: choose one from the list.")
    return found


@dataclass(frozen=True)
class Widget:
    """What the `picker` macro needs: every option (small lists) or none (a search box), and
    the current value with its label."""

    kind: str
    noun: str
    options: list[Option] | None
    value: str  # the id as text, "" for none
    current: Option | None
    missing: bool  # the value is an id that no longer exists
    url: str

    @property
    def text(self) -> str:
        """The search box's text: the chosen option, a missing id, or what was typed."""
        if self.current is not None:
            return self.current.text
        return f"#{self.value}" if self.missing else self.value


def widget(kind: str, value: Any = None) -> Widget | None:
    """The picker for `kind` holding `value` (an id, or text typed earlier); None when no
    package provides this kind (the template then shows a plain id box)."""
    picker = get(kind)
    if picker is None:
        return None
    raw = "" if value is None else str(value).strip()
    most = int(current_app.config.get("PICKER_SELECT_MAX", SELECT_MAX))
    cache = g.setdefault("picker_first", {})  # a page may show the same picker many times
    if kind not in cache:
        cache[kind] = picker.search("", most + 1)
    options = cache[kind] if len(cache[kind]) <= most else None
    current, missing, text_value = None, False, raw
    match = _ID.fullmatch(raw) or _TRAILING_ID.search(raw) if raw else None
    if match:
        found = int(match.group(1))
        text_value = str(found)
        label = picker.lookup([found]).get(found)
        current = Option(found, label) if label is not None else None
        missing = label is None
    return Widget(kind, picker.noun, options, text_value, current, missing,
                  url_for("pickers.suggest", kind=kind))


@bp.route("/<kind>")
@staff_required
def suggest(kind: str):
    """Suggestions for a search box: `{"options": [{"id", "label", "value"}]}`."""
    picker = get(kind) or abort(404)
    text = (request.args.get("q") or "").strip()[:200]
    match = _TRAILING_ID.search(text)
    if match:  # a chosen suggestion, typed on: look for its label
        text = text[:match.start()].strip()
    options = picker.search(text, SUGGESTIONS)
    if _ID.fullmatch(text):
        found = int(_ID.fullmatch(text).group(1))  # type: ignore[union-attr]
        label = picker.lookup([found]).get(found)
        if label is not None:
            options = [Option(found, label)] + [o for o in options if o.id != found]
    response = jsonify({"kind": kind, "options": [
        {"id": o.id, "label": o.label, "value": o.text} for o in options[:SUGGESTIONS]]})
    response.headers["Cache-Control"] = "private, no-store"  # lead names and emails
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _lead_picker() -> Picker:
    from app.leads.models import Lead

    def label(lead: Any) -> str:
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p)
        return f"{name} <{lead.email_display}>" if name else lead.email_display

    columns = (Lead.id, Lead.first_name, Lead.last_name, Lead.email_display)

    def search(text: str, limit: int) -> list[Option]:
        query = sa.select(*columns)
        if text:
            lowered = text.lower()
            query = query.where(sa.or_(
                Lead.email.startswith(lowered, autoescape=True),
                Lead.email.contains(lowered, autoescape=True) if "@" not in lowered
                else sa.false(),
                sa.func.lower(Lead.first_name + " " + Lead.last_name)
                .contains(lowered, autoescape=True),
                sa.func.lower(Lead.company).contains(lowered, autoescape=True)))
        rows = db.session.execute(query.order_by(Lead.id.desc()).limit(limit)).all()
        return [Option(row.id, label(row)) for row in rows]

    def lookup(ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = db.session.execute(sa.select(*columns).where(Lead.id.in_(ids))).all()
        return {row.id: label(row) for row in rows}

    def exact(text: str) -> int | None:
        return db.session.scalar(sa.select(Lead.id).where(Lead.email == text.strip().lower()))

    return Picker("lead", "lead", search, lookup, exact)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_picker(app, _lead_picker())
    app.add_template_global(widget, "picker_widget")

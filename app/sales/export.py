"""CSV export of qualified leads: `flask leads export` and `/sales/export.csv`.

Rows are read in batches (a server-side cursor on PostgreSQL, `yield_per` elsewhere) as plain
tuples and written a batch at a time (csv `writerows` into a buffer, one write), so memory stays
flat however many leads there are. `utm_source` and `stage_since` come from joined one-pass
subqueries (only the JSON path needed), not from a query per row. Every cell is defused
against formula injection (OWASP): a value starting with = + - @ tab CR or LF gets a leading
apostrophe, so a spreadsheet shows it as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import click
import sqlalchemy as sa
from flask import (
    Response,
    abort,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.cli import AppGroup
from sqlalchemy.dialects.postgresql import JSONB, distinct_on

from app import pickers
from app.auth.models import Role, User
from app.auth.roles import staff_required
from app.db import db, driver_params, utcnow
from app.leads import engagement
from app.leads.campaign_members import LeadCampaign
from app.leads.models import Event, Lead, Stage, StageChange
from app.sales.web import bp
from app.templating import plural

BATCH_SIZE = 5000
DEFAULT_STAGES = (Stage.MQL.value, Stage.SQL.value)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
BOM = "\ufeff"


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _first_forms() -> sa.Subquery:
    """Each lead's first form submission's `utm.utm_source` (only that JSON path, not the
    document): one pass over the form events, joined, instead of a query per row.

    Columns `utm` (the value when it is text: the usual case, no JSON to decode) and
    `utm_other` (any other JSON value, decoded, for the few that are not)."""
    path = Event.data[("utm", "utm_source")]
    if _postgres():
        # The path as SQL text, so the statement has only plain parameters (see `batches`).
        path = sa.literal_column("events.data #> '{utm,utm_source}'", JSONB)
        text = sa.literal_column("events.data #>> '{utm,utm_source}'", sa.Text)
        kind = sa.func.jsonb_typeof(path)
        columns = (sa.case((kind == "string", text), else_=None).label("utm"),
                   sa.case((kind.not_in(["string", "null"]), path), else_=None)
                   .label("utm_other"))
        return (sa.select(Event.lead_id, *columns)
                .where(Event.type == "form_submitted", Event.lead_id.is_not(None))
                .ext(distinct_on(Event.lead_id))
                .order_by(Event.lead_id, Event.occurred_at, Event.id)
                .subquery("first_form"))
    ranked = (sa.select(Event.lead_id, sa.null().label("utm"), path.label("utm_other"),
                        sa.func.row_number().over(partition_by=Event.lead_id,
                                                  order_by=(Event.occurred_at, Event.id))
                        .label("n"))
              .where(Event.type == "form_submitted", Event.lead_id.is_not(None))
              .subquery("ranked_forms"))
    return (sa.select(ranked.c.lead_id, ranked.c.utm, ranked.c.utm_other)
            .where(ranked.c.n == 1).subquery("first_form"))


def _utc_text(column: Any) -> Any:
    """A UTC time as its cell text, formatted by PostgreSQL (as `defuse` formats it)."""
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS")


def _stage_changes() -> sa.Subquery:
    """When each lead entered its current stage (its latest stage change)."""
    return (sa.select(StageChange.lead_id,
                      sa.func.max(StageChange.changed_at).label("since"))
            .group_by(StageChange.lead_id).subquery("stage_since"))


# name -> (SQL expression, how the cell is made from the value)
COLUMNS: dict[str, Any] = {
    "id": Lead.id,
    "email": Lead.email_display,
    "first_name": Lead.first_name,
    "last_name": Lead.last_name,
    "company": Lead.company,
    "job_title": Lead.job_title,
    "country": Lead.country,
    "phone": Lead.phone,
    "stage": Lead.stage,
    "fit_score": Lead.fit_score,
    "engagement_score": None,  # as of now, from the stored key (see `statement`)
    "owner": User.email,
    "created_at": Lead.created_at,
    "stage_since": None,  # from `_stage_changes()`, joined
    "utm_source": None,  # from `_first_forms()`, joined
}
DEFAULT_COLUMNS = ("id", "email", "first_name", "last_name", "company", "job_title", "country",
                   "stage", "fit_score", "engagement_score", "owner", "utm_source", "stage_since")


def defuse(value: Any) -> str:
    """The cell text: formulas neutralised with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, float):
        text = f"{value:.1f}"
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _utm_source(text: str | None, other: Any) -> str:
    """The cell of `utm.utm_source` (read by the query): empty when missing or falsy."""
    return str((text if text is not None else other) or "")


@dataclass
class Filters:
    stages: tuple[str, ...] = DEFAULT_STAGES
    min_fit: int | None = None
    min_engagement: float | None = None
    campaign_id: int | None = None
    owner: str | None = None
    since: date | None = None
    until: date | None = None
    columns: tuple[str, ...] = field(default=DEFAULT_COLUMNS)

    def check(self) -> None:
        unknown = [c for c in self.columns if c not in COLUMNS]
        if unknown:
            raise ValueError(f"unknown column(s): {', '.join(unknown)}; "
                             f"choose from {', '.join(COLUMNS)}")
        bad = [s for s in self.stages if s not in {st.value for st in Stage}]
        if bad:
            raise ValueError(f"unknown stage(s): {', '.join(bad)}")


def statement(filters: Filters) -> sa.Select:
    filters.check()
    query = sa.select().select_from(Lead).outerjoin(User, User.id == Lead.owner_id)
    since = None
    if "stage_since" in filters.columns or filters.since is not None \
            or filters.until is not None:
        changes = _stage_changes()
        query = query.outerjoin(changes, changes.c.lead_id == Lead.id)
        since = changes.c.since
    now = utcnow()
    joined: dict[str, Any] = {"stage_since": since,
                              "engagement_score": engagement.sql_current(Lead.engagement_key, now)}
    forms = None
    if "utm_source" in filters.columns:
        forms = _first_forms()
        query = query.outerjoin(forms, forms.c.lead_id == Lead.id)
        joined["utm_source"] = forms.c.utm
    if _postgres():  # times formatted by the database: no datetime objects per row
        joined.update({c: _utc_text(since if c == "stage_since" else COLUMNS[c])
                       for c in ("stage_since", "created_at")})
    query = query.add_columns(*[(joined[c] if c in joined else COLUMNS[c]).label(c)
                                for c in filters.columns])
    if forms is not None:  # the non-text values of utm_source, last (see `_cells`)
        query = query.add_columns(forms.c.utm_other.label("utm_other"))
    query = query.where(Lead.stage.in_(filters.stages),
                        Lead.awaiting_confirmation.is_(False))  # unconfirmed: not qualified
    if filters.min_fit is not None:
        query = query.where(Lead.fit_score >= filters.min_fit)
    if filters.min_engagement is not None:
        query = query.where(engagement.sql_at_least(Lead.engagement_key,
                                                    filters.min_engagement, now))
    if filters.campaign_id is not None:  # as the leads list says it (app.leads.query)
        query = query.where(sa.exists().where(LeadCampaign.lead_id == Lead.id,
                                              LeadCampaign.campaign_id == filters.campaign_id))
    if filters.owner:
        query = query.where(User.email == filters.owner.strip().lower())
    if filters.since is not None:
        assert since is not None  # joined above whenever a date filter is set
        start = datetime.combine(filters.since, time.min, UTC)
        query = query.where(since >= start)
    if filters.until is not None:
        assert since is not None
        end = datetime.combine(filters.until, time.max, UTC)
        query = query.where(since <= end)
    return query.order_by(Lead.id)


def batches(filters: Filters) -> Iterator[list[Any]]:
    """Matching rows, BATCH_SIZE at a time, from one streaming query.

    On PostgreSQL straight from a server-side cursor of the driver (plain tuples, one FETCH
    per batch); elsewhere through SQLAlchemy's `yield_per`."""
    query = statement(filters)
    if _postgres():
        compiled = query.compile(dialect=db.session.get_bind().dialect,
                                 compile_kwargs={"render_postcompile": True})
        raw = db.session.connection().connection.driver_connection
        assert raw is not None  # a live connection of this session
        with raw.cursor(name="kindling_leads_export") as cursor:
            cursor.execute(str(compiled), driver_params(compiled))
            while rows := cursor.fetchmany(BATCH_SIZE):
                yield rows
        return
    result = db.session.execute(query.execution_options(yield_per=BATCH_SIZE))
    try:
        for partition in result.partitions():
            yield list(partition)
    finally:
        result.close()


class _Line:
    """A file-like target for csv.writer that hands back each written line."""

    def write(self, text: str) -> str:
        return text


def _cells(filters: Filters, batch: list[sa.Row]) -> list[list[str]]:
    """Every row of a batch as defused cells (`defuse`; text that needs nothing and
    non-negative integers, most cells, are tested inline)."""
    starts = FORMULA_STARTS
    if "utm_source" not in filters.columns:
        return [[v if v.__class__ is str and not v.startswith(starts)
                 else "" if v is None
                 else (str(v) if v.__class__ is int and v >= 0 else defuse(v))
                 for v in row] for row in batch]
    utm = filters.columns.index("utm_source")
    rows = []
    for row in batch:
        cells = [v if v.__class__ is str and not v.startswith(starts)
                 else "" if v is None
                 else (str(v) if v.__class__ is int and v >= 0 else defuse(v))
                 for v in row]
        cells.pop()  # utm_other
        if row[-1] is not None:  # not text: decoded JSON
            cells[utm] = defuse(_utm_source(None, row[-1]))
        rows.append(cells)
    return rows


def lines(filters: Filters, bom: bool = False) -> Iterator[str]:
    """The CSV, one line at a time: header, then every row, defused."""
    writer = csv.writer(_Line())
    yield (BOM if bom else "") + writer.writerow(filters.columns)
    for batch in batches(filters):
        for cells in _cells(filters, batch):
            yield writer.writerow(cells)


def chunks(filters: Filters, bom: bool = False) -> Iterator[tuple[str, int]]:
    """The CSV a batch at a time: (text, rows in it); the header comes first, with 0."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(filters.columns)
    yield (BOM if bom else "") + buffer.getvalue(), 0
    for batch in batches(filters):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_cells(filters, batch))
        yield buffer.getvalue(), len(batch)


# The admin: a form, and the streamed file.

class FilterErrors(ValueError):
    """Filters that cannot be used: {form field: message}."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def _filters_from_args(args) -> Filters:
    """The filters of the form (or of a link to export.csv). The campaign is a picker: an id,
    a chosen suggestion or its exact name. Raises FilterErrors naming each bad field."""
    errors: dict[str, str] = {}

    def number(name: str, kind: type, message: str) -> Any:
        text = (args.get(name) or "").strip()
        try:
            return kind(text) if text else None
        except ValueError:
            errors[name] = message
            return None

    def day(name: str) -> date | None:
        try:
            return _date((args.get(name) or "").strip())
        except ValueError:
            errors[name] = "Use a date like 2026-03-31."
            return None

    min_fit = number("min_fit", int, "A whole number, like 20.")
    min_engagement = number("min_engagement", float, "A number, like 50.")
    try:
        campaign_id = pickers.resolve("campaign", args.get("campaign"))
    except pickers.PickError as exc:
        errors["campaign"], campaign_id = str(exc), None
    since, until = day("since"), day("until")
    if since and until and until < since:
        errors["until"] = "The end date is before the start date."
    columns = tuple(c for c in ",".join(args.getlist("columns")).split(",") if c) \
        or DEFAULT_COLUMNS
    filters = Filters(stages=tuple(args.getlist("stage")) or DEFAULT_STAGES, min_fit=min_fit,
                      min_engagement=min_engagement, campaign_id=campaign_id,
                      owner=(args.get("owner") or "").strip() or None, since=since,
                      until=until, columns=columns)
    try:
        filters.check()
    except ValueError as exc:
        errors["columns" if "column" in str(exc) else "stage"] = str(exc).capitalize() + "."
    if errors:
        raise FilterErrors(errors)
    return filters


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _query(filters: Filters, bom: bool) -> dict[str, Any]:
    """export.csv's query for these filters (ids, not the text typed in a picker)."""
    query: dict[str, Any] = {"stage": list(filters.stages), "columns": ",".join(filters.columns),
                             "min_fit": filters.min_fit, "min_engagement": filters.min_engagement,
                             "campaign": filters.campaign_id, "owner": filters.owner,
                             "since": filters.since and filters.since.isoformat(),
                             "until": filters.until and filters.until.isoformat(),
                             "bom": "1" if bom else None}
    return {name: value for name, value in query.items() if value is not None}


@bp.route("/export")
@staff_required
def export_form() -> Any:
    """The export form. "Download CSV" submits here: bad filters are shown on the form, good
    ones redirect to the file."""
    errors: dict[str, str] = {}
    submitted = bool(request.args.get("download"))
    if submitted:
        try:
            filters = _filters_from_args(request.args)
        except FilterErrors as exc:
            errors = exc.errors
        for name, noun in (("stage", "stage"), ("columns", "column")):
            if not request.args.getlist(name):
                errors[name] = f"Choose at least one {noun}."
        if not errors:
            return redirect(url_for("sales.export_csv",
                                    **_query(filters, request.args.get("bom") == "1")))
    owners = db.session.scalars(sa.select(User.email).where(
        User.role.in_([Role.SALES.value, Role.ADMIN.value])).order_by(User.email)).all()
    return render_template(
        "sales/export.html", stages=list(Stage), columns=list(COLUMNS), owners=owners,
        errors=errors, args=request.args,
        chosen_columns=request.args.getlist("columns") if submitted else DEFAULT_COLUMNS,
        chosen_stages=request.args.getlist("stage") if submitted else DEFAULT_STAGES,
    ), 400 if errors else 200


@bp.route("/export.csv")
@staff_required
def export_csv():
    try:
        filters = _filters_from_args(request.args)
    except FilterErrors:
        abort(400)
    bom = request.args.get("bom") == "1"
    body = (text.encode("utf-8") for text, _ in chunks(filters, bom=bom))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(body), mimetype="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="qualified-leads-{stamp}.csv"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


# The CLI: flask leads export

leads_cli = AppGroup("leads", help="Lead data commands.")


def _write(out: Iterable[tuple[str, int]], target) -> int:
    count = 0
    for text, rows in out:
        target.write(text)
        count += rows
    return count


@leads_cli.command("export")
@click.option("--stage", "stages", multiple=True, type=click.Choice([s.value for s in Stage]),
              help="Stage to include (repeatable); default mql and sql.")
@click.option("--min-fit", type=int)
@click.option("--min-engagement", type=float)
@click.option("--campaign", "campaign_id", type=int, help="Leads with activity in this campaign.")
@click.option("--owner", help="Owner's email.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Entered its stage on/after.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Entered its stage on/before.")
@click.option("--columns", help=f"Comma-separated, from: {', '.join(COLUMNS)}.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to FILE instead of stdout.")
@click.option("--bom", is_flag=True, help="Start with a UTF-8 byte order mark (for Excel).")
def export_command(stages, min_fit, min_engagement, campaign_id, owner, since, until, columns,
                   output, bom) -> None:
    """Export qualified leads as CSV (UTF-8, formula-safe), streamed in batches."""
    filters = Filters(stages=tuple(stages) or DEFAULT_STAGES, min_fit=min_fit,
                      min_engagement=min_engagement, campaign_id=campaign_id, owner=owner,
                      since=since.date() if since else None,
                      until=until.date() if until else None,
                      columns=tuple(c.strip() for c in columns.split(",") if c.strip())
                      if columns else DEFAULT_COLUMNS)
    try:
        filters.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            count = _write(chunks(filters, bom=bom), fh)
        click.echo(f"Wrote {plural(count, 'lead')} to {output}.", err=True)
    else:
        for text, _ in chunks(filters, bom=bom):
            click.echo(text, nl=False)

"""CSV export of qualified leads: `flask leads export` and `/sales/export.csv`.

Rows are read in batches (`yield_per`: a server-side cursor on PostgreSQL) as plain tuples and
written as they come, so memory stays flat however many leads there are. Every cell is defused
against formula injection (OWASP): a value starting with = + - @ tab CR or LF gets a leading
apostrophe, so a spreadsheet shows it as text.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any, Iterable, Iterator

import click
import sqlalchemy as sa
from flask import Response, abort, render_template, request, stream_with_context
from flask.cli import AppGroup

from app.auth.models import User
from app.auth.roles import staff_required
from app.db import db
from app.leads.models import Event, Lead, Stage, StageChange
from app.sales.web import bp

BATCH_SIZE = 500
DEFAULT_STAGES = (Stage.MQL.value, Stage.SQL.value)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
BOM = "\ufeff"

_first_form = (sa.select(Event.data).where(Event.lead_id == Lead.id,
                                            Event.type == "form_submitted")
               .order_by(Event.occurred_at, Event.id).limit(1).correlate(Lead)
               .scalar_subquery())
_stage_since = (sa.select(sa.func.max(StageChange.changed_at))
                .where(StageChange.lead_id == Lead.id).correlate(Lead).scalar_subquery())

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
    "engagement_score": Lead.engagement_score,
    "owner": User.email,
    "created_at": Lead.created_at,
    "stage_since": _stage_since,
    "utm_source": _first_form,
}
DEFAULT_COLUMNS = ("id", "email", "first_name", "last_name", "company", "job_title", "country",
                   "stage", "fit_score", "engagement_score", "owner", "utm_source", "stage_since")


def defuse(value: Any) -> str:
    """The cell text: formulas neutralised with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, float):
        text = f"{value:.1f}"
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _utm_source(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    utm = data.get("utm")
    return str(utm.get("utm_source") or "") if isinstance(utm, dict) else ""


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
    query = (sa.select(*[COLUMNS[c].label(c) for c in filters.columns])
             .select_from(Lead).outerjoin(User, User.id == Lead.owner_id)
             .where(Lead.stage.in_(filters.stages)))
    if filters.min_fit is not None:
        query = query.where(Lead.fit_score >= filters.min_fit)
    if filters.min_engagement is not None:
        query = query.where(Lead.engagement_score >= filters.min_engagement)
    if filters.campaign_id is not None:
        query = query.where(sa.exists().where(Event.lead_id == Lead.id,
                                              Event.campaign_id == filters.campaign_id))
    if filters.owner:
        query = query.where(User.email == filters.owner.strip().lower())
    if filters.since is not None:
        start = datetime.combine(filters.since, time.min, timezone.utc)
        query = query.where(_stage_since >= start)
    if filters.until is not None:
        end = datetime.combine(filters.until, time.max, timezone.utc)
        query = query.where(_stage_since <= end)
    return query.order_by(Lead.id)


def batches(filters: Filters) -> Iterator[list[sa.Row]]:
    """Matching rows, BATCH_SIZE at a time, from one streaming query."""
    result = db.session.execute(statement(filters).execution_options(yield_per=BATCH_SIZE))
    try:
        for partition in result.partitions():
            yield list(partition)
    finally:
        result.close()


class _Line:
    """A file-like target for csv.writer that hands back each written line."""

    def write(self, text: str) -> str:
        return text


def lines(filters: Filters, bom: bool = False) -> Iterator[str]:
    """The CSV, one line at a time: header, then every row, defused."""
    writer = csv.writer(_Line())
    yield (BOM if bom else "") + writer.writerow(filters.columns)
    for batch in batches(filters):
        for row in batch:
            cells = []
            for name, value in zip(filters.columns, row):
                cells.append(defuse(_utm_source(value) if name == "utm_source" else value))
            yield writer.writerow(cells)


# The admin: a form, and the streamed file.

def _filters_from_args(args) -> Filters:
    try:
        columns = tuple(c for c in ",".join(args.getlist("columns")).split(",") if c) \
            or DEFAULT_COLUMNS
        filters = Filters(
            stages=tuple(args.getlist("stage")) or DEFAULT_STAGES,
            min_fit=args.get("min_fit", type=int),
            min_engagement=args.get("min_engagement", type=float),
            campaign_id=args.get("campaign", type=int),
            owner=args.get("owner") or None,
            since=_date(args.get("since")), until=_date(args.get("until")),
            columns=columns)
        filters.check()
    except ValueError:
        abort(400)
    return filters


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


@bp.route("/export")
@staff_required
def export_form():
    return render_template("sales/export.html", stages=list(Stage), columns=list(COLUMNS),
                           default_columns=DEFAULT_COLUMNS, default_stages=DEFAULT_STAGES)


@bp.route("/export.csv")
@staff_required
def export_csv():
    filters = _filters_from_args(request.args)
    bom = request.args.get("bom") == "1"
    body = (line.encode("utf-8") for line in lines(filters, bom=bom))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(body), mimetype="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="qualified-leads-{stamp}.csv"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


# The CLI: flask leads export

leads_cli = AppGroup("leads", help="Lead data commands.")


def _write(out: Iterable[str], target) -> int:
    count = -1
    for line in out:
        target.write(line)
        count += 1
    return max(count, 0)


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
            count = _write(lines(filters, bom=bom), fh)
        click.echo(f"Wrote {count} lead(s) to {output}.", err=True)
    else:
        for line in lines(filters, bom=bom):
            click.echo(line, nl=False)

"""Report pages: /admin/reports/ lists them, /admin/reports/<slug> shows one with its filters,
charts and tables, /admin/reports/<slug>.csv downloads one table's numbers."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, abort, render_template, request

from app.auth.roles import staff_required
from app.reports import registry
from app.reports.filters import GRAINS, MODES, Filters

bp = Blueprint("reports", __name__, url_prefix="/admin/reports")


@bp.route("/")
@staff_required
def index():
    return render_template("reports/index.html", reports=registry.reports())


def _build(slug: str):
    report = registry.report(slug) or abort(404)
    filters = Filters.from_args(request.args)
    return report, filters, report.build(filters)


@bp.route("/<slug>")
@staff_required
def show(slug: str):
    report, filters, result = _build(slug)
    status = 400 if filters.errors else 200
    return render_template("reports/show.html", report=report, filters=filters, result=result,
                           reports=registry.reports(), campaigns=registry.campaigns(),
                           modes=MODES, grains=GRAINS), status


@bp.route("/<slug>.csv")
@staff_required
def download(slug: str):
    report, filters, result = _build(slug)
    table = result.table(request.args.get("table"))
    if table is None:
        abort(404)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    name = f"{report.slug}-{table.key}-{filters.since.isoformat()}-{filters.until.isoformat()}"
    return Response(table.csv_lines(bom=request.args.get("bom") == "1"),
                    mimetype="text/csv; charset=utf-8", headers={
                        "Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"',
                        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

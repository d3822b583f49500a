"""The Scores report: how the leads of a range spread over fit grade × engagement, with the MQL
line drawn where the active thresholds put it. Scores as they stand now (engagement decays)."""

from __future__ import annotations

import itertools

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads import engagement
from app.leads.models import Lead
from app.reports import charts
from app.reports.models import ReportLead
from app.reports.registry import Report
from app.reports.tables import Result, Table
from nurture.scoring import service
from nurture.scoring.rules import GRADES


def edges(threshold: float) -> list[float]:
    t = threshold or 1.0
    return [0.0, t / 4, t / 2, t * 3 / 4, t, t * 1.25, t * 1.5, t * 2]


def scores(f) -> Result:
    rules = service.active_rules().rules
    cuts = edges(rules.mql_engagement)
    labels = [f"{low:g}–{high:g}" for low, high in itertools.pairwise(cuts)] + [f"{cuts[-1]:g}+"]
    now = utcnow()  # engagement as it stands now: "below X" compared on the stored key
    bucket = sa.case(*((engagement.sql_below(Lead.engagement_key, high, now), index)
                       for index, high in enumerate(cuts[1:])), else_=len(cuts) - 1)
    query = (sa.select(Lead.fit_score, bucket, sa.func.count())
             .join(ReportLead, ReportLead.lead_id == Lead.id)
             .where(ReportLead.created_day >= f.since, ReportLead.created_day <= f.until)
             .group_by(Lead.fit_score, bucket))
    if f.campaign_id is not None:
        query = query.where(ReportLead.campaign_id == f.campaign_id)
    grid = {grade: [0] * len(labels) for grade in GRADES}
    for fit_points, index, count in db.session.execute(query):
        grid[rules.grade(int(fit_points or 0))][int(index)] += int(count)
    counts = [grid[g] for g in GRADES]
    line_y = GRADES.index(rules.mql_grade) + 1
    mql = sum(grid[g][i] for g in GRADES[:line_y] for i in range(4, len(labels)))
    chart = charts.heatmap(
        "scores-chart", f"Leads by fit grade and engagement, {f.since} to {f.until}",
        f"A grid of lead counts: rows are fit grades A (best) to F, columns engagement bands. "
        f"The dashed line marks the MQL thresholds (fit {rules.mql_grade} or better and "
        f"engagement {rules.mql_engagement:g} or more); {mql} leads are inside it.",
        labels, list(GRADES), counts, line_x=4, line_y=line_y, x_title="Engagement",
        y_title="Fit grade",
        line_label=f"MQL line: fit ≥ {rules.mql_grade}, engagement ≥ {rules.mql_engagement:g}")
    rows = [[grade, *grid[grade], sum(grid[grade])] for grade in GRADES]
    table = Table("scores", "Fit grade × engagement",
                  ["Fit grade", *labels, "Total"], rows, chart=chart,
                  csv_columns=["fit_grade", *(f"engagement_{label}" for label in labels),
                               "total"],
                  intro=f"Leads created in the range, scored as they are now (engagement "
                        f"decays with a {rules.half_life_days:g}-day half-life). Inside the "
                        f"MQL line: {mql}.")
    return Result(tables=[table], empty=not any(map(sum, counts)),
                  empty_message="No leads were created in this range.")


REPORT = Report("scores", "Scores", scores, 60,
                "The spread of fit × engagement, with the MQL line drawn on it.",
                filters=("range", "campaign"))

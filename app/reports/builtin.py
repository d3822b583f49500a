"""The core's reports: the funnel, leads and MQLs over time, cost per campaign, and speed.

Each is `build(filters) -> Result`: tables of numbers (the CSV is the table), each with the
chart that draws it. Every count comes from the rollups (`query.sums`) or, for the durations,
from the per-lead facts and the sales handoffs; nothing reads the raw event log.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from app.db import chunks, db
from app.leads.models import StageChange
from app.outcomes.models import Outcome
from app.reports import charts, query
from app.reports.days import start_of
from app.reports.facts import CHANNELS, FUNNEL
from app.reports.filters import Filters, grain_heading, period_label, period_start, periods
from app.reports.models import ReportLead
from app.reports.registry import CampaignInfo, Report, campaign_names, campaigns, ruleset_labels
from app.reports.tables import Hours, Rate, Result, Table, money
from app.sales.models import Assignment

STAGE_LABELS = {"page_views": "Page visits", "leads": "Leads", "mql": "MQL", "sql": "SQL",
                "opportunity": "Opportunity", "customer": "Customer"}
CHANNEL_LABELS = {"hosted": "Hosted page", "embed": "Embedded form", "import": "Import",
                  "api": "API", "other": "Other"}


def stage_metric(stage: str, mode: str) -> str:
    return f"cohort_{stage}" if mode == "cohort" else stage


def _range_words(f: Filters) -> str:
    return f"{f.since.isoformat()} to {f.until.isoformat()}"


def _mode_words(f: Filters) -> str:
    return ("leads created in the range, and how far they have got since"
            if f.mode == "cohort" else "every move made in the range, whenever the lead came")


# Funnel

def funnel_counts(f: Filters, campaign_id: int | None) -> list[int]:
    metrics = ["page_views", "leads", *(stage_metric(s, f.mode) for s in FUNNEL)]
    totals = query.totals(metrics, f.since, f.until, campaign_id=campaign_id)
    return [totals[m] for m in metrics]


def funnel(f: Filters) -> Result:
    counts = funnel_counts(f, f.campaign_id)
    stages = ["page_views", "leads", *FUNNEL]
    rows: list[list[Any]] = []
    for index, (stage, count) in enumerate(zip(stages, counts)):
        rate = Rate(count, counts[index - 1]) if index else None
        rows.append([STAGE_LABELS[stage], count, rate])
    name = campaign_names().get(f.campaign_id, "every campaign") if f.campaign_id is not None \
        else "every campaign"
    chart = charts.hbar(
        "funnel-chart", f"Funnel, {name}, {_range_words(f)}",
        "Bars from page visits down to customers; each bar's text is its count and the "
        "conversion from the stage above. " + "; ".join(
            f"{r[0]} {r[1]}" + (f" ({r[2]} of the stage above)" if r[2] else "")
            for r in rows) + ".",
        [(r[0], float(r[1]), f"{r[1]:,}" + (f"  ·  {r[2]}" if r[2] and r[2].value is not None
                                             else "")) for r in rows])
    tables = [Table("funnel", "Funnel", ["Stage", "Count", "From the stage above"],
                    rows, chart=chart,
                    csv_columns=["stage", "count", "conversion_from_previous_percent"],
                    intro=f"Counting {_mode_words(f)}. Page visits are people's views of "
                          "landing and tracked pages in the range (machines left out).")]
    per_campaign = _funnel_by_campaign(f)
    if per_campaign.rows:
        tables.append(per_campaign)
    return Result(tables=tables, empty=not any(counts),
                  empty_message="No visits, leads or moves in this range. Try a longer range "
                                "or another campaign.")


def _funnel_by_campaign(f: Filters) -> Table:
    metrics = ["page_views", "leads", *(stage_metric(s, f.mode) for s in FUNNEL)]
    found = query.sums(metrics, f.since, f.until, campaign_id=f.campaign_id,
                       by=("metric", "campaign_id"))
    names = campaign_names()
    ids = sorted({campaign for _, campaign in found}, key=lambda c: (c == 0, names.get(c, "")))
    rows = []
    for campaign_id in ids:
        counts = [found.get((m, campaign_id), 0) for m in metrics]
        rates = [Rate(counts[i], counts[i - 1]) for i in range(1, len(counts))]
        rows.append([names.get(campaign_id, f"Campaign {campaign_id}"), *counts, *rates])
    labels = [STAGE_LABELS[s] for s in ("page_views", "leads", *FUNNEL)]
    rate_labels = [f"{a} → {b}" for a, b in itertools.pairwise(labels)]
    return Table("by_campaign", "Funnel per campaign", ["Campaign", *labels, *rate_labels], rows,
                 csv_columns=["campaign", "page_visits", "leads", "mql", "sql", "opportunity",
                              "customer", *(f"{a}_to_{b}_percent" for a, b in zip(
                                  ("visits", "leads", "mql", "sql", "opportunity"),
                                  ("leads", "mql", "sql", "opportunity", "customer")))],
                 intro="Embedded-form leads count for the campaign they are credited to.")


# Leads and MQLs over time

def over_time(f: Filters) -> Result:
    mql_metric = stage_metric("mql", f.mode)
    found = query.sums(["leads", mql_metric], f.since, f.until, campaign_id=f.campaign_id,
                       by=("metric", "day", "channel", "utm_source"))
    starts = periods(f.since, f.until, f.grain)
    labels = [period_label(s, f.grain) for s in starts]
    index = {s: i for i, s in enumerate(starts)}
    by_channel = {m: {c: [0] * len(starts) for c in CHANNELS} for m in ("leads", mql_metric)}
    by_source: dict[str, dict[str, list[int]]] = {"leads": {}, mql_metric: {}}
    source_totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (metric, day, channel, source), value in found.items():
        slot = index[period_start(day, f.grain)]
        by_channel[metric].setdefault(channel, [0] * len(starts))[slot] += value
        name = source or "(none)"
        by_source[metric].setdefault(name, [0] * len(starts))[slot] += value
        source_totals[name][0 if metric == "leads" else 1] += value
    tables: list[Table] = []
    rows: list[list[Any]]
    for metric, title, key in (("leads", "New leads by channel", "leads_by_channel"),
                               (mql_metric, "MQLs by channel", "mqls_by_channel")):
        used = [c for c in CHANNELS if any(by_channel[metric].get(c, []))] or ["hosted"]
        rows = [[labels[i], *(by_channel[metric][c][i] for c in used),
                 sum(by_channel[metric][c][i] for c in used)] for i in range(len(starts))]
        names = [CHANNEL_LABELS.get(c, c) for c in used]
        what = "leads created" if metric == "leads" else (
            "MQLs among the leads created" if f.mode == "cohort" else "moves to MQL")
        chart = charts.columns(
            f"{key}-chart", f"{title} per {f.grain}, {_range_words(f)}",
            f"Stacked columns: {what} per {f.grain}, one colour per channel "
            f"({', '.join(names)}). The table beside it lists every number.",
            labels, [(n, [float(r[1 + i]) for r in rows]) for i, n in enumerate(names)])
        tables.append(Table(key, title, [grain_heading(f.grain), *names, "Total"], rows,
                            chart=chart, intro=f"Counting {what} per {f.grain}."))
    top = sorted(source_totals, key=lambda s: (-source_totals[s][0], s))
    shown, rest = top[:6], top[6:]
    series = []
    for name in shown:
        series.append((name, by_source["leads"].get(name, [0] * len(starts))))
    if rest:
        series.append(("other sources", [sum(by_source["leads"].get(n, [0] * len(starts))[i]
                                             for n in rest) for i in range(len(starts))]))
    rows = [[labels[i], *(values[i] for _, values in series)] for i in range(len(starts))]
    by_source_chart = charts.columns(
        "leads_by_source-chart", f"New leads by UTM source per {f.grain}, {_range_words(f)}",
        "Stacked columns of leads per UTM source (the six biggest, then the rest together). "
        "The table beside it lists every number.", labels,
        [(n, [float(v) for v in values]) for n, values in series]) if series else None
    tables.append(Table("leads_by_source", "New leads by UTM source",
                        [grain_heading(f.grain), *(n for n, _ in series)], rows,
                        chart=by_source_chart,
                        intro="The utm_source of the submission that created the lead."))
    tables.append(Table("sources", "UTM sources in the range",
                        ["UTM source", "Leads", "MQLs", "Lead → MQL"],
                        [[name, source_totals[name][0], source_totals[name][1],
                          Rate(source_totals[name][1], source_totals[name][0])]
                         for name in top],
                        csv_columns=["utm_source", "leads", "mqls", "lead_to_mql_percent"]))
    return Result(tables=tables, empty=not found,
                  empty_message="No leads or MQLs in this range.")


# Cost

def cost_in_range(campaign: CampaignInfo, since: date, until: date) -> tuple[Decimal, str]:
    """The share of the campaign's cost that falls in the range: spread evenly over its dates
    when it has both; the whole cost otherwise (said in the note)."""
    cost = Decimal(campaign.cost or 0)
    if campaign.starts_on is None or campaign.ends_on is None \
            or campaign.ends_on < campaign.starts_on:
        return cost, "whole cost (the campaign has no start and end date)"
    days = (campaign.ends_on - campaign.starts_on).days + 1
    first, last = max(since, campaign.starts_on), min(until, campaign.ends_on)
    overlap = max(0, (last - first).days + 1)
    share = (cost * overlap / days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return share, f"{overlap} of its {days} days"


def per(cost: Decimal, count: int) -> Decimal | None:
    if not count:
        return None
    return (cost / count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _won(f: Filters) -> dict[int, dict[str, Decimal]]:
    """Won revenue per campaign and currency. A deal the CRM told again (same deal id: a
    corrected amount) counts once, at its latest amount, on the day it was first won."""
    deal = (Outcome.lead_id, Outcome.external_id,
            sa.case((Outcome.external_id.is_(None), Outcome.id)))
    deals = (sa.select(Outcome.lead_id, Outcome.currency, Outcome.amount,
                       sa.func.row_number().over(partition_by=deal, order_by=Outcome.id.desc())
                       .label("newest"),
                       sa.func.min(Outcome.recorded_at).over(partition_by=deal).label("won_at"))
             .where(Outcome.stage == "customer", Outcome.amount.is_not(None))
             .subquery())
    query_ = (sa.select(ReportLead.campaign_id, deals.c.currency, sa.func.sum(deals.c.amount))
              .join(ReportLead, ReportLead.lead_id == deals.c.lead_id)
              .where(deals.c.newest == 1)
              .group_by(ReportLead.campaign_id, deals.c.currency))
    if f.mode == "cohort":
        query_ = query_.where(ReportLead.created_day >= f.since, ReportLead.created_day <= f.until)
    else:
        query_ = query_.where(deals.c.won_at >= start_of(f.since),
                              deals.c.won_at < start_of(f.until + timedelta(days=1)))
    if f.campaign_id is not None:
        query_ = query_.where(ReportLead.campaign_id == f.campaign_id)
    out: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for campaign_id, currency, total in db.session.execute(query_):
        out[campaign_id][currency or ""] = Decimal(total or 0)
    return out


def cost(f: Filters) -> Result:
    metrics = ["leads", "submissions_repeat", *(stage_metric(s, f.mode)
                                                for s in ("mql", "sql", "customer"))]
    found = query.sums(metrics, f.since, f.until, campaign_id=f.campaign_id,
                       by=("metric", "campaign_id"))
    won = _won(f)
    rows: list[list[Any]] = []
    chart_items: list[tuple[str, float, str]] = []
    notes: list[str] = []
    for campaign in campaigns():
        if f.campaign_id is not None and campaign.id != f.campaign_id:
            continue
        spent, basis = cost_in_range(campaign, f.since, f.until)
        counts = [found.get((m, campaign.id), 0) for m in metrics]
        leads, repeats, mqls, sqls, customers = counts
        revenue = ", ".join(money(v, c) for c, v in sorted(won.get(campaign.id, {}).items()))
        rows.append([campaign.name, spent, campaign.currency, basis, leads, repeats, mqls, sqls,
                     customers, per(spent, leads), per(spent, mqls), per(spent, sqls),
                     per(spent, customers), revenue or "—"])
        cpm = per(spent, mqls)
        if cpm is not None:
            chart_items.append((campaign.name, float(cpm), money(cpm, campaign.currency)))
    chart = charts.hbar("cost-chart", f"Cost per MQL by campaign, {_range_words(f)}",
                        "One bar per campaign with at least one MQL: its cost in the range "
                        "divided by its MQLs. " + "; ".join(f"{n}: {t}"
                                                            for n, _, t in chart_items) + ".",
                        chart_items, color=charts.PALETTE[1]) if chart_items else None
    if any(r[3].startswith("whole") for r in rows):
        notes.append("A campaign without start and end dates counts its whole cost in any "
                     "range; give it dates to spread the cost over them.")
    table = Table("cost", "Cost per campaign",
                  ["Campaign", "Cost in range", "Currency", "Cost basis", "New leads",
                   "Repeat submissions", "MQLs", "SQLs", "Customers", "Per lead", "Per MQL",
                   "Per SQL", "Per customer", "Won (deals)"],
                  rows, chart=chart,
                  csv_columns=["campaign", "cost_in_range", "currency", "cost_basis",
                               "new_leads", "repeat_submissions", "mqls", "sqls", "customers",
                               "cost_per_lead", "cost_per_mql", "cost_per_sql",
                               "cost_per_customer", "won"],
                  numeric=[False, True, False, False, *([True] * 9), False],
                  intro="New leads are people the campaign brought for the first time; repeat "
                        "submissions by people already known are counted apart and cost "
                        "nothing extra. Embedded-form submissions count for the campaign they "
                        "are credited to. MQLs, SQLs and customers: "
                        f"{_mode_words(f)}.")
    return Result(tables=[table], notes=notes, empty=not rows,
                  empty_message="No campaign to show. Campaigns get a cost on their edit page.")


# Speed

def percentile(values: list[float], share: float) -> float | None:
    """Nearest rank: the smallest value at least `share` of the values are at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _hours(seconds: float) -> float:
    return seconds / 3600.0


def mql_durations(f: Filters) -> list[tuple[int, float]]:
    """(campaign, hours from created to MQL) of the leads the filters select."""
    query_ = sa.select(ReportLead.campaign_id, ReportLead.created_at, ReportLead.mql_at).where(
        ReportLead.mql_at.is_not(None))
    if f.mode == "cohort":
        query_ = query_.where(ReportLead.created_day >= f.since, ReportLead.created_day <= f.until)
    else:
        query_ = query_.where(ReportLead.mql_at >= start_of(f.since),
                              ReportLead.mql_at < start_of(f.until + timedelta(days=1)))
    if f.campaign_id is not None:
        query_ = query_.where(ReportLead.campaign_id == f.campaign_id)
    return [(c, max(0.0, _hours((mql - created).total_seconds())))
            for c, created, mql in db.session.execute(query_) if mql is not None]


def handoffs(f: Filters) -> list[Any]:
    """The sales handoffs (MQL → decision) the filters select, with their MQL time."""
    query_ = (sa.select(Assignment.outcome, Assignment.decided_at, Assignment.decision_reason,
                        Assignment.lead_id, Assignment.stage_change_id,
                        StageChange.changed_at.label("mql_at"),
                        sa.func.coalesce(ReportLead.campaign_id, 0).label("campaign_id"))
              .join(StageChange, StageChange.id == Assignment.stage_change_id)
              .outerjoin(ReportLead, ReportLead.lead_id == Assignment.lead_id))
    if f.mode == "cohort":
        query_ = query_.where(ReportLead.created_day >= f.since, ReportLead.created_day <= f.until)
    else:
        query_ = query_.where(StageChange.changed_at >= start_of(f.since),
                              StageChange.changed_at < start_of(f.until + timedelta(days=1)))
    if f.campaign_id is not None:
        query_ = query_.where(ReportLead.campaign_id == f.campaign_id)
    return list(db.session.execute(query_))


def speed(f: Filters) -> Result:
    names = campaign_names()
    to_mql = mql_durations(f)
    rows = handoffs(f)
    accepted = [_hours((r.decided_at - r.mql_at).total_seconds()) for r in rows
                if r.outcome == "accepted" and r.decided_at is not None]
    decided = [r for r in rows if r.outcome in ("accepted", "recycled", "disqualified")]
    rejected = [r for r in decided if r.outcome != "accepted"]
    waiting = _still_waiting([r for r in rows if r.outcome is None])
    mql_hours = [h for _, h in to_mql]
    summary: list[list[Any]] = [
        ["Time to MQL (created → MQL)", len(mql_hours), Hours(median(mql_hours)),
         Hours(percentile(mql_hours, 0.9))],
        ["MQL → accepted by sales", len(accepted), Hours(median(accepted)),
         Hours(percentile(accepted, 0.9))],
    ]
    chart = charts.hbar(
        "speed-chart", f"Median and p90 times, {_range_words(f)}",
        "Bars of the median and 90th-percentile hours from lead to MQL and from MQL to "
        "acceptance. " + "; ".join(f"{r[0]}: median {r[2]}, p90 {r[3]}" for r in summary) + ".",
        [(label, float(h.hours or 0), str(h)) for label, h in (
            ("To MQL, median", summary[0][2]), ("To MQL, p90", summary[0][3]),
            ("To accept, median", summary[1][2]), ("To accept, p90", summary[1][3]))],
        color=charts.PALETTE[2])
    tables = [Table("speed", "How fast", ["Measure", "Leads", "Median", "p90"], summary,
                    chart=chart, csv_columns=["measure", "count", "median_hours", "p90_hours"],
                    intro="Median: half were faster. p90: nine in ten were this fast or "
                          "faster (nearest rank). Counting " + _mode_words(f) + ".")]
    tables.append(Table("acceptance", "MQL → SQL acceptance",
                        ["Handoffs decided", "Accepted", "Rejected", "Acceptance rate",
                         "Still waiting"],
                        [[len(decided), len(decided) - len(rejected), len(rejected),
                          Rate(len(decided) - len(rejected), len(decided)), waiting]],
                        csv_columns=["decided", "accepted", "rejected",
                                     "acceptance_rate_percent", "waiting"],
                        numeric=[True] * 5))
    per_campaign: dict[int, list[float]] = defaultdict(list)
    for campaign_id, hours in to_mql:
        per_campaign[campaign_id].append(hours)
    tables.append(Table("to_mql_by_campaign", "Time to MQL per campaign",
                        ["Campaign", "MQLs", "Median", "p90"],
                        [[names.get(c, f"Campaign {c}"), len(v), Hours(median(v)),
                          Hours(percentile(v, 0.9))] for c, v in sorted(
                              per_campaign.items(), key=lambda item: names.get(item[0], ""))],
                        csv_columns=["campaign", "mqls", "median_hours", "p90_hours"]))
    reasons: dict[tuple[str, str], int] = defaultdict(int)
    for r in rejected:
        reasons[(names.get(r.campaign_id, f"Campaign {r.campaign_id}"),
                 _reason(r))] += 1
    tables.append(Table("rejections_by_campaign", "Rejection reasons per campaign",
                        ["Campaign", "Reason", "Rejections"],
                        [[c, reason, n] for (c, reason), n in sorted(
                            reasons.items(), key=lambda item: (item[0][0], -item[1]))],
                        csv_columns=["campaign", "reason", "rejections"],
                        numeric=[False, False, True]))
    versions = ruleset_labels([r.mql_at for r in rejected])
    by_rules: dict[tuple[str, str], int] = defaultdict(int)
    for r, version in zip(rejected, versions):
        by_rules[(version, _reason(r))] += 1
    tables.append(Table("rejections_by_ruleset", "Rejection reasons per scoring rule set",
                        ["Rule set (active at the handoff)", "Reason", "Rejections"],
                        [[v, reason, n] for (v, reason), n in sorted(
                            by_rules.items(), key=lambda item: (item[0][0], -item[1]))],
                        csv_columns=["ruleset", "reason", "rejections"],
                        numeric=[False, False, True]))
    return Result(tables=tables, empty=not (to_mql or rows),
                  empty_message="No MQLs or handoffs in this range.")


def _still_waiting(undecided: list[Any]) -> int:
    """How many undecided handoffs wait for sales: those whose MQL move is still the lead's
    latest (as the sales queue sees it). A lead moved on by another path (a rep moving it on
    the lead page, a recycle) left its handoff behind, undecided and not waiting."""
    latest: dict[int, int] = {}
    for part in chunks(sorted({r.lead_id for r in undecided})):
        for lead_id, last in db.session.execute(
                sa.select(StageChange.lead_id, sa.func.max(StageChange.id))
                .where(StageChange.lead_id.in_(part)).group_by(StageChange.lead_id)):
            latest[lead_id] = last
    return sum(1 for r in undecided if latest.get(r.lead_id) == r.stage_change_id)


def _reason(row: Any) -> str:
    text = " ".join((row.decision_reason or "").split())
    outcome = "recycled" if row.outcome == "recycled" else "disqualified"
    return f"{outcome}: {text[:120]}" if text else f"{outcome} (no reason given)"


CORE_REPORTS = (
    Report("funnel", "Funnel", funnel, 10,
           "Page visits → leads → MQL → SQL → opportunity → customer, overall and per campaign."),
    Report("over-time", "Leads and MQLs over time", over_time, 20,
           "New leads and MQLs per day, week or month, by channel and by UTM source.",
           filters=("range", "campaign", "mode", "grain")),
    Report("cost", "Cost per lead", cost, 30,
           "Cost per lead, MQL, SQL and customer for each campaign."),
    Report("speed", "Speed", speed, 40,
           "Time to MQL and to acceptance, acceptance rate, and why sales rejected leads."),
)

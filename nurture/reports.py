"""The Email report: per sequence step, sends, people's opens and clicks, unsubscribes and
bounces, with machine opens and clicks apart. Rolled up daily (`email` rollup).

Each number counts emails (sends), not events: a send opened five times is one open. A send
counts on the day its first event of that kind happened (the send itself on the day it was
sent), so summing days never counts one email twice. Rates divide by the emails sent in the
range, so in a short range an email sent before it but opened in it can lift a rate.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.db import any_of, db
from app.leads.models import Event
from app.reports import charts, query
from app.reports.days import as_date, bounds, day_sql
from app.reports.models import ReportState
from app.reports.registry import Report, Rollup, Row
from app.reports.tables import Rate, Result, Table
from nurture.models import EmailFirst, Enrollment, Send, Sequence, Step

# (event type, machine?) -> metric
KINDS = {("email_sent", False): "email_sent", ("email_opened", False): "email_open_human",
         ("email_opened", True): "email_open_machine", ("email_clicked", False): "email_click_human",
         ("email_clicked", True): "email_click_machine", ("unsubscribed", False): "email_unsubscribed",
         ("bounced", False): "email_bounced"}
METRICS = tuple(dict.fromkeys(KINDS.values()))
TYPES = tuple(sorted({t for t, _ in KINDS}))


_ANY_AGENT = ("email_sent", "unsubscribed", "bounced")  # one metric whoever caused them


def _metric(kind: str, is_bot: bool) -> str | None:
    if kind in _ANY_AGENT:
        return KINDS[(kind, False)]
    return KINDS.get((kind, bool(is_bot)))


def _send_key() -> Any:
    """The email an event is about (its `send_id` column)."""
    return Event.send_id


def _metric_sql() -> Any:
    """`_metric(type, is_bot)` in SQL."""
    whens = []
    for (kind, machine), metric in KINDS.items():
        if kind in _ANY_AGENT:
            whens.append((Event.type == kind, metric))
        else:
            whens.append((sa.and_(Event.type == kind, Event.is_bot.is_(machine)), metric))
    return sa.case(*whens, else_=None)


FIRSTS_STATE = "email_firsts"
FIRSTS_CHUNK = 500_000  # event ids per `record_firsts` call


def record_firsts() -> int:
    """The email rollup's `prepare`: the first day of each (email, kind) among the events
    written since the last call, into `nurture_email_firsts` (an earlier day wins). It reads
    from where the call before the last one stopped, so an event whose transaction committed
    late is still seen (recording it twice changes nothing). Returns 1 while newer events are
    left for another call, 0 once caught up: the window read again next time survives the last
    call. Does not commit."""
    state = db.session.get(ReportState, FIRSTS_STATE)
    if state is None:
        state = ReportState(name=FIRSTS_STATE, value={"low": 0, "high": 0})
        db.session.add(state)
    low, high = int(state.value.get("low", 0)), int(state.value.get("high", 0))
    newest = int(db.session.scalar(sa.select(sa.func.max(Event.id))) or 0)
    top = max(high, min(newest, high + FIRSTS_CHUNK))
    metric, send_key = _metric_sql(), _send_key()
    each = (sa.select(send_key.label("send_key"), metric.label("metric"),
                      day_sql(Event.occurred_at).label("day"))
            .where(Event.id > low, Event.id <= top, Event.type.in_(TYPES),
                   send_key.is_not(None))).subquery()
    rows = [{"send_id": send_id, "metric": kind, "day": as_date(day)}
            for send_id, kind, day in db.session.execute(
                sa.select(each.c.send_key, each.c.metric, sa.func.min(each.c.day))
                .where(each.c.metric.is_not(None)).group_by(each.c.send_key, each.c.metric))]
    table = EmailFirst.__table__
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    for part in range(0, len(rows), 1000):
        upsert = dialect.insert(table)
        db.session.execute(upsert.on_conflict_do_update(
            index_elements=[table.c.send_id, table.c.metric], set_={"day": upsert.excluded.day},
            where=upsert.excluded.day < table.c.day), rows[part:part + 1000])
    state.value = {"low": high, "high": top}
    return int(newest > top)


def build_days(days: set[date]) -> dict[date, list[Row]]:
    """`build` for many days in one pass (a rebuild): each email's first event of each kind,
    over all stored email events, counted on its day when that day is one of `days`. A first
    day recorded earlier (`nurture_email_firsts`, kept when old events are pruned) wins over
    the stored events: a rebuild after a prune counts nothing twice."""
    each = (sa.select(_send_key().label("send_key"), _metric_sql().label("metric"),
                      Event.occurred_at.label("at"))
            .where(Event.type.in_(TYPES), _send_key().is_not(None))).subquery()
    firsts = (sa.select(each.c.send_key, each.c.metric, sa.func.min(each.c.at).label("first_at"))
              .where(each.c.metric.is_not(None))
              .group_by(each.c.send_key, each.c.metric)).subquery()
    located = (sa.select(day_sql(firsts.c.first_at).label("day"), EmailFirst.day.label("known"),
                         firsts.c.metric, Enrollment.campaign_id, Send.step_id)
               .select_from(firsts)
               .join(Send, Send.id == firsts.c.send_key)
               .join(Enrollment, Enrollment.id == Send.enrollment_id)
               .outerjoin(EmailFirst, sa.and_(EmailFirst.send_id == Send.id,
                                              EmailFirst.metric == firsts.c.metric))).subquery()
    counted: dict[tuple[date, str, int, int], int] = {}
    for day, known, metric, campaign_id, step_id, value in db.session.execute(
            sa.select(located.c.day, located.c.known, located.c.metric, located.c.campaign_id,
                      located.c.step_id, sa.func.count())
            .group_by(located.c.day, located.c.known, located.c.metric, located.c.campaign_id,
                      located.c.step_id)):
        when = as_date(day) if known is None else min(as_date(day), as_date(known))
        if when in days:
            key = (when, metric, campaign_id or 0, step_id)
            counted[key] = counted.get(key, 0) + int(value)
    out: dict[date, list[Row]] = {}
    for (when, metric, campaign_id, step_id), value in counted.items():
        out.setdefault(when, []).append((metric, campaign_id, "", "", str(step_id), value))
    return out


def build(day: date) -> list[Row]:
    start, end = bounds(day)
    send_key = _send_key()
    found: set[tuple[int, str]] = set()
    for kind, is_bot, send_id in db.session.execute(
            sa.select(Event.type, Event.is_bot, send_key)
            .where(Event.type.in_(TYPES), Event.occurred_at >= start, Event.occurred_at < end,
                   send_key.is_not(None))):
        metric = _metric(kind, is_bot)
        if metric:
            found.add((send_id, metric))
    if not found:
        return []
    # Drop what already happened to the same email on an earlier day (counted then): its first
    # day is recorded (`record_firsts`, run before the days are built), so the event log is
    # not read again, and a pruned log cannot make a later open look like a first.
    sends = sorted({send_id for send_id, _ in found})
    for part in range(0, len(sends), 5000):
        for send_id, metric in db.session.execute(
                sa.select(EmailFirst.send_id, EmailFirst.metric)
                .where(any_of(EmailFirst.send_id, sends[part:part + 5000]),
                       EmailFirst.day < day)):
            found.discard((send_id, metric))
    sends = sorted({send_id for send_id, _ in found})
    where: dict[int, tuple[int, int]] = {}
    for part in range(0, len(sends), 5000):
        for send_id, step_id, campaign_id in db.session.execute(
                sa.select(Send.id, Send.step_id, Enrollment.campaign_id)
                .join(Enrollment, Enrollment.id == Send.enrollment_id)
                .where(any_of(Send.id, sends[part:part + 5000]))):
            where[send_id] = (step_id, campaign_id or 0)
    rows: list[Row] = []
    for (send_id, metric) in found:
        if send_id in where:
            step_id, campaign_id = where[send_id]
            rows.append((metric, campaign_id, "", "", str(step_id), 1))
    return rows


_PLACEHOLDER = re.compile(r"\{\{-?\s*(?:lead\.)?([A-Za-z_][\w.]*)[^}]*?-?\}\}")
_STATEMENT = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def readable_subject(source: str) -> str:
    """A step's subject as a reader of the report knows it: `Your guide, {{ lead.first_name }}`
    reads `Your guide, [first name]` (the template's own syntax is for its editor)."""
    text = _PLACEHOLDER.sub(lambda m: "[" + m.group(1).split(".")[-1].replace("_", " ") + "]",
                            source or "")
    text = " ".join(_STATEMENT.sub("", text).split())
    return text or "(no subject)"


def email(f) -> Result:
    found = query.sums(METRICS, f.since, f.until, campaign_id=f.campaign_id,
                       by=("metric", "detail"))
    counts: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for (metric, detail), value in found.items():
        counts[int(detail)][metric] += value
    steps = {s.id: s for s in db.session.scalars(sa.select(Step).where(Step.id.in_(list(counts))))}
    sequences = {s.id: s.name for s in db.session.scalars(
        sa.select(Sequence).where(Sequence.id.in_({s.sequence_id for s in steps.values()})))}

    def label(step_id: int) -> tuple[str, str]:
        step = steps.get(step_id)
        if step is None:
            return "(removed)", f"step {step_id}"
        return (sequences.get(step.sequence_id, "?"),
                f"{step.position + 1}. {readable_subject(step.subject)}")

    ordered = sorted(counts, key=lambda s: (label(s)[0], steps[s].position if s in steps else 0))
    rows: list[list[Any]] = []
    for step_id in ordered:
        c = counts[step_id]
        sequence, step = label(step_id)
        rows.append([f"{sequence} · {step}", c["email_sent"], c["email_open_human"],
                     Rate(c["email_open_human"], c["email_sent"]), c["email_click_human"],
                     Rate(c["email_click_human"], c["email_sent"]), c["email_unsubscribed"],
                     c["email_bounced"], c["email_open_machine"], c["email_click_machine"]])
    chart = charts.hbar(
        "email-chart", f"People's opens per email, {f.since} to {f.until}",
        "One bar per sequence email: the emails opened by a person, with the open rate. "
        + "; ".join(f"{r[0]}: {r[2]} opened of {r[1]} sent" for r in rows) + ".",
        [(str(r[0]).split(" · ", 1)[-1], float(r[2]), f"{r[2]:,} of {r[1]:,} ({r[3]})")
         for r in rows],
        color=PALETTE_EMAIL) if rows else None
    table = Table("steps", "Per sequence step",
                  ["Email (sequence · step)", "Sent", "Opened by a person", "Open rate",
                   "Clicked by a person", "Click rate", "Unsubscribed", "Bounced",
                   "Machine opens", "Machine clicks"], rows, chart=chart,
                  csv_columns=["email", "sent", "human_opens", "open_rate_percent",
                               "human_clicks", "click_rate_percent", "unsubscribed", "bounced",
                               "machine_opens", "machine_clicks"],
                  intro="Opens and clicks by people; privacy proxies, link scanners and other "
                        "machines are counted apart and never in the rates. Each email counts "
                        "once per kind, on the day it first happened.")
    return Result(tables=[table], empty=not rows,
                  empty_message="No sequence email was sent, opened or clicked in this range.")


PALETTE_EMAIL = charts.PALETTE[3]

ROLLUP = Rollup("email", METRICS, build, event_types=TYPES, build_days=build_days,
                prepare=record_firsts)
REPORT = Report("email", "Email", email, 50,
                "Per sequence step: sends, people's opens and clicks, unsubscribes, bounces; "
                "machine opens apart.", filters=("range", "campaign"))

"""Retention: keep nothing longer than needed, without losing what the reports count.

Settings (config, days; see DEFAULTS in app.privacy):
- `PRIVACY_EVENT_RETENTION`: per event type, `"<type>"` for a person's events and
  `"<type>:machine"` for machine ones (mail scanners, privacy proxies), e.g.
  `{"page_viewed": 180, "email_opened:machine": 30}`. Types not named are kept.
- `PRIVACY_IP_DAYS` (30): IP addresses of submissions, intake rows and consent records are then
  truncated (IPv4 to its /24, IPv6 to its /48).
- `PRIVACY_RAW_SUBMISSION_DAYS` (730): the raw posted values of a submission and of its intake
  row are then cleared (the cleaned values that made the lead stay).

`prune()` (nightly, and `flask --app wsgi privacy prune [--dry-run]`) first brings the reports'
daily rollups up to date (`app.reports.rollup.refresh`), then deletes only events the rollups
have already counted (ids at or below the rollup's high mark), in batches of
`PRIVACY_PRUNE_BATCH` rows, each its own short transaction: concurrent inserts never wait on a
long lock, and a prune stopped half-way simply continues next time (what it deleted was
counted before; what it did not is still there), never counting a day twice.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from app.db import db, utcnow
from app.jobs import job
from app.leads.models import Event

log = logging.getLogger(__name__)


@dataclass
class Rule:
    event_type: str
    machine: bool
    days: int

    @property
    def label(self) -> str:
        who = "machine" if self.machine else "person"
        return f"{self.event_type} ({who}) older than {self.days} days"


@dataclass
class Report:
    dry_run: bool
    events: dict[str, int] = field(default_factory=dict)  # rule label -> rows
    ips_truncated: int = 0
    raw_cleared: int = 0
    stopped_early: bool = False
    delete_seconds: float = 0.0  # time spent deleting events (the bench's rows/s)

    def lines(self) -> list[str]:
        verb = "would go" if self.dry_run else "deleted"
        out = [f"{label}: {count} {verb}" for label, count in self.events.items()]
        truncate = "would be truncated" if self.dry_run else "truncated"
        clear = "would be cleared" if self.dry_run else "cleared"
        out.append(f"IP addresses older than {current_app.config['PRIVACY_IP_DAYS']} days: "
                   f"{self.ips_truncated} {truncate}")
        out.append(f"raw submission values older than "
                   f"{current_app.config['PRIVACY_RAW_SUBMISSION_DAYS']} days: "
                   f"{self.raw_cleared} {clear}")
        if self.stopped_early:
            out.append("stopped at the time budget: the next run continues")
        return out


class SettingError(ValueError):
    """A retention setting that cannot be read; the message says which and why."""


def rules() -> list[Rule]:
    """The event rules of PRIVACY_EVENT_RETENTION. SettingError for a key or a number it
    cannot read (before anything is pruned: a misread key would delete the wrong events)."""
    found = []
    for key, days in (current_app.config.get("PRIVACY_EVENT_RETENTION") or {}).items():
        event_type, colon, kind = str(key).partition(":")
        if not event_type or (colon and kind != "machine"):
            raise SettingError(f"PRIVACY_EVENT_RETENTION: “{key}” is not an event type, or an "
                               "event type and “:machine” (e.g. email_opened:machine); "
                               "nothing was pruned.")
        try:
            number = int(days)
        except (TypeError, ValueError):
            number = -1
        if number < 0 or isinstance(days, bool):
            raise SettingError(f"PRIVACY_EVENT_RETENTION: “{key}”: {days!r} is not a number of "
                               "days; nothing was pruned.")
        found.append(Rule(event_type, kind == "machine", number))
    return found


def truncate_ip(ip: str) -> str:
    """203.0.113.77 → 203.0.113.0; 2001:db8:1:2::5 → 2001:db8:1::. Not an address: ""."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)


def _rolled_up_mark() -> int:
    """The highest event id the rollups counted and will not read again: a refresh re-reads
    from the mark of the run before the last (`app.reports.rollup`), so the lower mark."""
    from app.reports.models import ReportState

    state = db.session.get(ReportState, "marks")
    value = (state.value or {}) if state is not None else {}
    marks = value.get("events") or [0, 0]
    return int(marks[0] or 0)


def add_expiring_column(app: Flask, kind: str, table: str, column: str, time_column: str) -> None:
    """Register a column retention shortens: kind "ip" (truncated after PRIVACY_IP_DAYS) or
    "raw" (emptied after PRIVACY_RAW_SUBMISSION_DAYS). Packages register their own tables."""
    app.extensions.setdefault("privacy_expiring", []).append((kind, table, column, time_column))


def _expiring(kind: str) -> list[tuple[sa.Table, sa.Column, sa.Column]]:
    found = []
    for k, table, column, time_column in current_app.extensions.get("privacy_expiring", []):
        if k == kind and table in db.metadata.tables:
            t = db.metadata.tables[table]
            found.append((t, t.c[column], t.c[time_column]))
    return found


def _event_filter(rule: Rule, mark: int):
    cutoff = utcnow() - timedelta(days=rule.days)
    return sa.and_(Event.type == rule.event_type, Event.is_bot.is_(rule.machine),
                   Event.occurred_at < cutoff, Event.id <= mark)


def _delete_batch(where: sa.ColumnElement[bool]) -> list[tuple[str, bool, int]]:
    """Delete the events `where` selects; (type, is_bot, rows) of what went. PostgreSQL counts
    in the statement (`WITH gone AS (DELETE … RETURNING) SELECT … GROUP BY`), so no deleted row
    travels to Python; SQLite has no DELETE in a WITH, so there the rows are counted here."""
    delete = sa.delete(Event).where(where).returning(Event.type, Event.is_bot)
    if db.session.get_bind().dialect.name == "postgresql":
        # The batch's commit does not wait for its WAL to reach the disk: a crash may bring
        # back rows of the last batches, which the next run deletes again (the rollups
        # counted them already). Concurrent writers' commits no longer queue behind ours.
        db.session.execute(sa.text("SET LOCAL synchronous_commit TO off"))
        gone = delete.cte("gone")
        return [(t, b, n) for t, b, n in db.session.execute(
            sa.select(gone.c.type, gone.c.is_bot, sa.func.count())
            .group_by(gone.c.type, gone.c.is_bot))]
    counts: dict[tuple[str, bool], int] = {}
    for event_type, is_bot in db.session.execute(
            delete.execution_options(synchronize_session=False)):
        counts[(event_type, bool(is_bot))] = counts.get((event_type, bool(is_bot)), 0) + 1
    return [(t, b, n) for (t, b), n in counts.items()]


def _prune_events(chosen: list[Rule], mark: int, report: Report, batch: int,
                  out_of_time: Callable[[], bool]) -> None:
    """Walk the events by id, `batch` ids per statement (each its own short transaction), and
    delete those any rule says are too old: every statement does bounded work, whatever the
    mix of types, and never re-reads what an earlier batch deleted."""
    import time

    for rule in chosen:
        report.events[rule.label] = 0
    if not chosen:
        return
    if report.dry_run:
        for rule in chosen:
            report.events[rule.label] = db.session.scalar(
                sa.select(sa.func.count()).select_from(Event)
                .where(_event_filter(rule, mark))) or 0
        return
    by_kind = {(rule.event_type, rule.machine): rule.label for rule in chosen}
    matches = sa.or_(*(_event_filter(rule, mark) for rule in chosen))
    last = int(db.session.scalar(sa.select(sa.func.min(Event.id))) or 1) - 1
    started = time.perf_counter()
    while last < mark:
        if out_of_time():
            report.stopped_early = True
            break
        upper = min(last + batch, mark)
        deleted = _delete_batch(sa.and_(Event.id > last, Event.id <= upper, matches))
        db.session.commit()
        for event_type, is_bot, count in deleted:
            label = by_kind.get((event_type, bool(is_bot)))
            if label is not None:
                report.events[label] += int(count)
        last = upper
    report.delete_seconds += time.perf_counter() - started


def _truncate_ips(report: Report, batch: int, out_of_time: Callable[[], bool]) -> None:
    cutoff = utcnow() - timedelta(days=int(current_app.config["PRIVACY_IP_DAYS"]))
    for table, ip_column, time_column in _expiring("ip"):
        where = sa.and_(time_column < cutoff, ip_column != "")
        last = None  # ids are numbers or text (intake): the walk starts at the first
        while not out_of_time():
            after = where if last is None else sa.and_(where, table.c.id > last)
            rows = db.session.execute(sa.select(table.c.id, ip_column).where(after)
                                      .order_by(table.c.id).limit(batch)).all()
            if not rows:
                break
            last = rows[-1][0]
            changed = [(row_id, truncate_ip(ip)) for row_id, ip in rows if truncate_ip(ip) != ip]
            report.ips_truncated += len(changed)
            if not report.dry_run:
                for row_id, short in changed:
                    db.session.execute(sa.update(table).where(table.c.id == row_id)
                                       .values({ip_column.name: short}))
                db.session.commit()
        else:
            report.stopped_early = True


def _clear_raw(report: Report, batch: int, out_of_time: Callable[[], bool]) -> None:
    days = int(current_app.config["PRIVACY_RAW_SUBMISSION_DAYS"])
    for table, column, time_column in _expiring("raw"):
        where = sa.and_(time_column < utcnow() - timedelta(days=days),
                        sa.cast(column, sa.Text) != "{}")
        if report.dry_run:
            report.raw_cleared += db.session.scalar(
                sa.select(sa.func.count()).select_from(table).where(where)) or 0
            continue
        while not out_of_time():
            ids = list(db.session.scalars(sa.select(table.c.id).where(where).limit(batch)))
            if not ids:
                break
            db.session.execute(sa.update(table).where(table.c.id.in_(ids))
                               .values({column.name: {}}))
            db.session.commit()
            report.raw_cleared += len(ids)
        else:
            report.stopped_early = True


def prune(*, dry_run: bool = False, budget_seconds: float | None = None) -> Report:
    """Apply the retention settings (see the module's doc). Commits batch by batch."""
    import time

    from app.reports import rollup

    chosen = rules()  # a setting it cannot read stops it here, before anything goes
    report = Report(dry_run=dry_run)
    batch = int(current_app.config["PRIVACY_PRUNE_BATCH"])
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() > deadline

    if not dry_run:  # twice: the second run's lower mark is the first run's high one
        for _ in range(2):
            if rollup.refresh() is None:
                log.info("privacy: rollups are refreshed elsewhere; pruning what they counted")
    # A dry run rolls nothing up; a real run would first, so it counts what is there now.
    mark = _rolled_up_mark() if not dry_run else \
        int(db.session.scalar(sa.select(sa.func.max(Event.id))) or 0)
    _prune_events(chosen, mark, report, batch, out_of_time)
    _truncate_ips(report, batch, out_of_time)
    _clear_raw(report, batch, out_of_time)
    return report


@job
def prune_job() -> str:
    """Nightly (see `add_periodic` in app.privacy.init_app)."""
    report = prune(budget_seconds=float(current_app.config["PRIVACY_PRUNE_BUDGET_SECONDS"]))
    return "; ".join(report.lines())


__all__ = ["Report", "Rule", "SettingError", "add_expiring_column", "prune", "prune_job", "rules",
           "truncate_ip"]

"""Where a person's data is kept: the registry that access exports and erasures walk.

Each package registers the tables (and other stores) it owns that hold personal data:

    add_holder(app, TableHolder("submissions", "submissions", "lead_id",
                                scrub={"email": "", "raw": {}}, also_by_email="email"))

- export: every row of the table that belongs to the lead, every column (`rows`).
- erase: the row is deleted (`scrub=DELETE`), or the named columns are overwritten (the row
  stays, so counts and rollups keep their totals), or a custom `erase` callable runs.

Any table with a foreign key to `leads.id` that no package registered is found from the schema
and treated the safe way: exported whole, its rows deleted on erasure. So a table added later is
covered before its package says anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from app.db import chunks, db
from app.leads.models import Lead

DELETE = "delete"


@dataclass(frozen=True)
class Found:
    """What an erasure hands each holder: the lead (already loaded) and its address. No lead:
    the address is held without one (a quarantined submit, a suppression), found by address."""

    lead: Lead | None
    identity: str  # the normalised address


@dataclass
class TableHolder:
    name: str  # the export's section name
    table: str
    lead_column: str | None = "lead_id"
    # Rows found through another table instead: a function of the lead id giving a select of
    # this table's primary keys (e.g. webhook deliveries through the lead's stage changes).
    via: Callable[[int], Any] | None = None
    also_by_email: str | None = None  # a column holding the address (any case; no lead yet)
    # Rows found by the address alone (no such column): a function of the normalised address
    # giving a select of this table's primary keys.
    by_address: Callable[[str], Any] | None = None
    scrub: dict[str, Any] | str = DELETE
    erase: Callable[[Found, list[Any]], int] | None = None  # custom: (found, primary keys)
    export: Callable[[Lead], list[dict[str, Any]]] | None = None  # custom rows
    order_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def sa_table(self) -> sa.Table:
        return db.metadata.tables[self.table]

    def where(self, lead: Lead | None, identity: str) -> Any:
        table = self.sa_table()
        clauses = []
        if lead is not None and self.lead_column:
            clauses.append(table.c[self.lead_column] == lead.id)
        if lead is not None and self.via is not None:
            clauses.append(_pk(table).in_(self.via(lead.id)))
        if self.also_by_email and identity:  # as typed in some rows (a quarantined submit)
            column = table.c[self.also_by_email]
            clauses.append(sa.func.lower(sa.func.trim(column)) == identity)
        if self.by_address is not None and identity:
            clauses.append(_pk(table).in_(self.by_address(identity)))
        return sa.or_(*clauses) if clauses else sa.false()


@dataclass
class OtherHolder:
    """Personal data outside the tables: files, Redis. Only erased (exports read the tables)."""

    name: str
    erase: Callable[[Found], int]


def _pk(table: sa.Table) -> Any:
    return next(iter(table.primary_key.columns))


def add_holder(app: Flask, holder: TableHolder | OtherHolder) -> None:
    holders = app.extensions.setdefault("privacy_holders", [])
    if all(h.name != holder.name for h in holders):
        holders.append(holder)


def add_erasure_barrier(app: Flask, wait: Callable[[int], int]) -> None:
    """Register `wait(lead_id) -> emails waited for`, run by an erasure after its commit and
    before files and Redis are cleaned: a package whose work may be in flight for the lead (an
    email being handed to the provider) waits for it to settle, so nothing it writes for the
    person lands after the erasure (and the clean-up then finds it)."""
    app.extensions.setdefault("privacy_erasure_barriers", []).append(wait)


def barriers() -> list[Callable[[int], int]]:
    return list(current_app.extensions.get("privacy_erasure_barriers", []))


def registered() -> list[TableHolder | OtherHolder]:
    return list(current_app.extensions.get("privacy_holders", []))


def table_holders() -> list[TableHolder]:
    """The registered table holders, then one for every unregistered table that points at a
    lead (export everything, delete on erasure)."""
    known = [h for h in registered() if isinstance(h, TableHolder)]
    claimed = {h.table for h in known} | {"leads"}
    for table in sorted(db.metadata.tables.values(), key=lambda t: t.name):
        if table.name in claimed:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "leads":
                known.append(TableHolder(table.name, table.name, fk.parent.name))
                break
    return known


def jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return value


def rows_of(holder: TableHolder, lead: Lead | None, identity: str = "") -> list[dict[str, Any]]:
    """The holder's rows of the lead, or of the address when there is no lead."""
    if holder.export is not None:
        return holder.export(lead) if lead is not None else []
    table = holder.sa_table()
    query = sa.select(table).where(holder.where(lead, lead.email if lead else identity))
    order = table.c[holder.order_by] if holder.order_by else _pk(table)
    return [{key: jsonable(value) for key, value in row._mapping.items()}
            for row in db.session.execute(query.order_by(order))]


def held_without_lead(identity: str) -> bool:
    """Whether any table holds rows of this address that no lead links (found by address)."""
    return any(db.session.scalar(sa.select(_pk(h.sa_table())).where(h.where(None, identity))
                                 .limit(1)) is not None
               for h in table_holders() if h.also_by_email or h.by_address)


def erase_rows(holder: TableHolder, found: Found) -> int:
    table = holder.sa_table()
    keys = list(db.session.scalars(sa.select(_pk(table))
                                   .where(holder.where(found.lead, found.identity))))
    if not keys:
        return 0
    if holder.erase is not None:
        return holder.erase(found, keys)
    if holder.scrub == {}:  # nothing personal in it: kept as it is (exported all the same)
        return 0
    for part in chunks(keys):
        if holder.scrub == DELETE:
            db.session.execute(sa.delete(table).where(_pk(table).in_(part)))
        else:
            assert isinstance(holder.scrub, dict)
            db.session.execute(sa.update(table).where(_pk(table).in_(part))
                               .values(**holder.scrub))
    return len(keys)

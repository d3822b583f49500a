"""What a report is made of: tables of numbers (each with an optional chart beside it), and
their CSV, defused against spreadsheet formulas by the one function the lead export uses."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from app.sales.export import BOM, defuse


@dataclass
class Rate:
    """A share shown as a percentage; undefined (—) when nothing to divide by."""

    part: float
    whole: float

    @property
    def value(self) -> float | None:
        return None if not self.whole else self.part / self.whole

    def __str__(self) -> str:
        value = self.value
        return "—" if value is None else f"{value * 100:.1f} %"

    def csv(self) -> str:
        value = self.value
        return "" if value is None else f"{value * 100:.1f}"


@dataclass
class Hours:
    """A duration in hours: "45 min", "5.2 h", "3.1 d"; CSV gives hours."""

    hours: float | None

    def __str__(self) -> str:
        if self.hours is None:
            return "—"
        if self.hours < 1:
            return f"{self.hours * 60:.0f} min"
        if self.hours < 48:
            return f"{self.hours:.1f} h"
        return f"{self.hours / 24:.1f} d"

    def csv(self) -> str:
        return "" if self.hours is None else f"{self.hours:.2f}"


def money(value: Decimal | None, currency: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.2f} {currency}".strip()


@dataclass
class Table:
    key: str
    title: str
    columns: Sequence[str]
    rows: list[list[Any]]
    intro: str = ""
    chart: Markup | None = None
    csv_columns: Sequence[str] | None = None  # when the CSV headers differ (units)
    numeric: Sequence[bool] = ()
    empty: str = "No data in this range."

    def __post_init__(self) -> None:
        if not self.numeric:
            self.numeric = [index > 0 for index in range(len(self.columns))]

    def cell(self, value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.1f}"
        if isinstance(value, Decimal):
            return f"{value:,.2f}"
        return str(value)

    def csv_lines(self, bom: bool = False) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        # Headers too: some name what leads posted (a column per UTM source).
        writer.writerow([defuse(name) for name in self.csv_columns or self.columns])
        for row in self.rows:
            writer.writerow([_csv_value(value) for value in row])
        yield (BOM if bom else "") + buffer.getvalue()


def _csv_value(value: Any) -> str:
    if isinstance(value, (Rate, Hours)):
        return value.csv()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return defuse(value)


@dataclass
class Result:
    tables: list[Table] = field(default_factory=list)
    empty: bool = False
    empty_message: str = "Nothing happened in this range yet."
    notes: list[str] = field(default_factory=list)

    def table(self, key: str | None) -> Table | None:
        if key is None:
            return self.tables[0] if self.tables else None
        return next((t for t in self.tables if t.key == key), None)

"""``python -m bench``: run every ``bench/bench_*.py`` and print one table.

Each module exposes ``run(ctx: bench.lib.Context) -> list[bench.lib.Row]``.
Exit status is 0 even when a row fails, unless ``--strict`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import traceback
from pathlib import Path

from bench.lib import Context, Row

BENCH_DIR = Path(__file__).resolve().parent
COLUMNS = ("figure", "target", "measured", "ratio", "verdict")


def discover(name_filter: str | None) -> list[str]:
    """Sorted module names ``bench_*`` in this folder, optionally filtered by substring."""
    names = sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))
    return [name for name in names if name_filter is None or name_filter in name]


def cells(row: Row) -> tuple[str, ...]:
    ratio = "—" if row.ratio is None else f"{row.ratio:.2f}×"
    verdict = {True: "PASS", False: "FAIL", None: "—"}[row.ok]
    return (row.figure, row.target, row.measured, ratio, verdict)


def render(rows: list[Row]) -> str:
    """Plain-text table, one line per row."""
    table = [COLUMNS, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def fmt(line: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(table[0]), rule, *(fmt(line) for line in table[1:])])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run the Kindling benchmarks and print one table.")
    parser.add_argument("-k", dest="name", metavar="NAME",
                        help="only run benchmark modules whose name contains NAME")
    parser.add_argument("--duration", type=int, default=10, metavar="SECONDS",
                        help="length of each wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=32, metavar="N",
                        help="wrk connections (default 32)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any row is FAIL")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < 1:
        parser.error("--duration and --connections must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modules = discover(args.name)
    if not modules:
        print(f"no benchmark module matches {args.name!r}", file=sys.stderr)
        return 1 if args.strict else 0

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="kindling-bench-") as tmp:
        ctx = Context(duration=args.duration, connections=args.connections, tmp=Path(tmp))
        for name in modules:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                rows.extend(importlib.import_module(f"bench.{name}").run(ctx))
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
                traceback.print_exc()
                first_line = (str(exc).splitlines() or [""])[0]
                rows.append(Row(name, "—", f"error: {type(exc).__name__}: {first_line}",
                                None, False))

    print(render(rows))
    failed = any(row.ok is False for row in rows)
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Charts as SVG, drawn on the server: no JavaScript, nothing fetched, readable offline.

Every chart is an `<svg role="img">` named by its `<title>` and `<desc>` (which says what it
shows in words), always placed beside the table of the same numbers: the table is the text
alternative and the way to read exact values. Colours pass 3:1 against white, and no chart
relies on colour alone (a legend names each series; bars carry their value as text). Each
mark carries `data-label` / `data-value`, so a test can read the numbers a chart draws.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0f766e", "#4d7c0f",
           "#4b5563")
INK = "#1d2433"
MUTED = "#5b6475"
GRID = "#d9dde5"
FONT = 'font-family="system-ui, sans-serif"'


def _frame(chart_id: str, title: str, desc: str, width: int, height: int, body: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'preserveAspectRatio="xMinYMin meet">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>{body}</svg>')


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def hbar(chart_id: str, title: str, desc: str,
         items: Sequence[tuple[str, float, str]], *, width: int = 560,
         color: str = PALETTE[0]) -> Markup:
    """Horizontal bars: (label, value, text shown after the bar)."""
    label_w, row_h, top = 150, 34, 8
    plot_w = width - label_w - 130
    height = top * 2 + row_h * max(len(items), 1)
    peak = max((value for _, value, _ in items), default=0) or 1
    parts = []
    for index, (label, value, text) in enumerate(items):
        y = top + index * row_h
        bar = 0 if value <= 0 else max(2, plot_w * value / peak)
        parts.append(
            f'<g class="bar" data-label="{escape(label)}" data-value="{escape(_num(value))}">'
            f'<text x="{label_w - 8}" y="{y + 21}" text-anchor="end" fill="{INK}" {FONT} '
            f'font-size="14">{escape(_fit(label))}</text>'
            f'<rect x="{label_w}" y="{y + 6}" width="{bar:.1f}" height="{row_h - 12}" '
            f'fill="{color}" rx="3"></rect>'
            f'<text x="{label_w + bar + 6:.1f}" y="{y + 21}" fill="{INK}" {FONT} '
            f'font-size="14">{escape(text)}</text></g>')
    return _frame(chart_id, title, desc, width, height, "".join(parts))


def columns(chart_id: str, title: str, desc: str, categories: Sequence[str],
            series: Sequence[tuple[str, Sequence[float]]], *, width: int = 720) -> Markup:
    """Stacked columns, one per category (a period), one colour per series, with a legend."""
    left, right, top, bottom = 48, 12, 12, 56
    legend_h = 22 * ((len(series) + 3) // 4)
    height = 260 + legend_h
    plot_h = height - top - bottom - legend_h
    plot_w = width - left - right
    totals = [sum(values[i] for _, values in series) for i in range(len(categories))]
    peak = max(totals, default=0) or 1
    step = _nice_step(peak)
    ceiling = step * (int(peak // step) + 1)
    parts = []
    for tick in range(0, int(ceiling) + 1, int(step) or 1):
        y = top + plot_h - plot_h * tick / ceiling
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{GRID}"></line><text x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end" fill="{MUTED}" {FONT} font-size="12">{tick:,}</text>')
    slot = plot_w / max(len(categories), 1)
    bar_w = max(2.0, min(40.0, slot * 0.7))
    label_every = max(1, int(len(categories) / 12) + (1 if len(categories) > 12 else 0))
    for index, category in enumerate(categories):
        x = left + slot * index + (slot - bar_w) / 2
        y = top + plot_h
        for s_index, (name, values) in enumerate(series):
            value = values[index]
            if value <= 0:
                continue
            h = plot_h * value / ceiling
            y -= h
            parts.append(f'<rect class="bar" data-label="{escape(category)} · {escape(name)}" '
                         f'data-value="{escape(_num(value))}" x="{x:.1f}" y="{y:.1f}" '
                         f'width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[s_index % len(PALETTE)]}"></rect>')
        if index % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
                         f'text-anchor="middle" fill="{MUTED}" {FONT} font-size="11">'
                         f'{escape(_short(category))}</text>')
    for s_index, (name, _) in enumerate(series):
        lx = left + (s_index % 4) * (plot_w / 4)
        ly = height - legend_h + 22 * (s_index // 4)
        parts.append(f'<rect x="{lx:.1f}" y="{ly}" width="12" height="12" '
                     f'fill="{PALETTE[s_index % len(PALETTE)]}"></rect><text x="{lx + 18:.1f}" '
                     f'y="{ly + 11}" fill="{INK}" {FONT} font-size="13">{escape(name)}</text>')
    return _frame(chart_id, title, desc, width, height, "".join(parts))


def heatmap(chart_id: str, title: str, desc: str, x_labels: Sequence[str],
            y_labels: Sequence[str], counts: Sequence[Sequence[int]], *,
            line_x: int | None = None, line_y: int | None = None,
            x_title: str = "", y_title: str = "", line_label: str = "") -> Markup:
    """A grid of counts (rows y, columns x), darker for more, with a line drawn around the
    region x ≥ line_x and y < line_y (the MQL region: engagement and fit both high)."""
    left, top, cell_w, cell_h = 70, 28, 64, 38
    width = left + cell_w * len(x_labels) + 20
    height = top + cell_h * len(y_labels) + 58
    peak = max((max(row, default=0) for row in counts), default=0) or 1
    parts = [(f'<text x="{left}" y="16" fill="{INK}" {FONT} font-size="13">'
             f'{escape(x_title)} →</text>')]
    for yi, y_label in enumerate(y_labels):
        y = top + yi * cell_h
        parts.append(f'<text x="{left - 8}" y="{y + cell_h / 2 + 5:.1f}" text-anchor="end" '
                     f'fill="{INK}" {FONT} font-size="14">{escape(y_label)}</text>')
        for xi, _ in enumerate(x_labels):
            value = counts[yi][xi]
            share = value / peak
            fill = _blend(share)
            ink = "#ffffff" if share > 0.55 else INK
            x = left + xi * cell_w
            parts.append(f'<g class="cell" data-label="{escape(y_label)} · '
                         f'{escape(x_labels[xi])}" data-value="{value}">'
                         f'<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" '
                         f'fill="{fill}" stroke="#ffffff"></rect>'
                         f'<text x="{x + cell_w / 2}" y="{y + cell_h / 2 + 5:.1f}" '
                         f'text-anchor="middle" fill="{ink}" {FONT} font-size="13">'
                         f'{value:,}</text></g>')
    for xi, x_label in enumerate(x_labels):
        parts.append(f'<text x="{left + xi * cell_w + cell_w / 2}" '
                     f'y="{top + cell_h * len(y_labels) + 16}" text-anchor="middle" '
                     f'fill="{MUTED}" {FONT} font-size="11">{escape(x_label)}</text>')
    parts.append(f'<text x="8" y="{top + cell_h * len(y_labels) + 16}" fill="{MUTED}" {FONT} '
                 f'font-size="11">{escape(y_title)}</text>')
    if line_x is not None and line_y is not None and line_y > 0:
        x0 = left + line_x * cell_w
        x1 = left + len(x_labels) * cell_w
        y1 = top + line_y * cell_h
        parts.append(f'<path class="mql-line" d="M{x0} {top} L{x0} {y1} L{x1} {y1}" '
                     f'fill="none" stroke="#be123c" stroke-width="3" '
                     f'stroke-dasharray="8 4"></path>'
                     f'<text x="{x0 + 4}" y="{top + cell_h * len(y_labels) + 40}" '
                     f'fill="#be123c" {FONT} font-size="13">{escape(line_label)}</text>')
    return _frame(chart_id, title, desc, width, height, "".join(parts))


def _fit(label: str, room: int = 18) -> str:
    """A bar label short enough for its column (the table beside has it whole)."""
    return label if len(label) <= room else label[:room - 1].rstrip() + "…"


def _blend(share: float) -> str:
    """White to the accent blue, by share."""
    start, end = (0xF6, 0xF7, 0xF9), (0x1D, 0x4E, 0xD8)
    rgb = [round(a + (b - a) * share) for a, b in zip(start, end)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _nice_step(peak: float) -> float:
    raw = peak / 5
    magnitude = 10 ** max(0, len(str(int(raw))) - 1)
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _short(label: str) -> str:
    return label[5:] if len(label) == 10 else label

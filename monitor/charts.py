"""Server-rendered SVG charts: geometry in Python, markup in templates/monitor/_chart.html.

Each chart is one column per bucket: a transparent hit area that links to
the Runs tab filtered to the bucket and carries the bucket's values as its
<title> (the browser's hover), with stacked bars or line points drawn in it.
Every chart also carries its table, the text alternative behind <details>.
"""

import dataclasses
import math

WIDTH, HEIGHT = 640, 210
LEFT, RIGHT, TOP, BOTTOM = 80, 26, 14, 32
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclasses.dataclass
class Series:
    key: str        # CSS class: the colour
    label: str
    values: list    # one per bucket; None: no value


@dataclasses.dataclass
class Chart:
    id: str
    title: str
    unit: str
    kind: str                     # "bars" (stacked) or "lines"
    series: list
    empty: str = ""               # shown instead of the chart when no bucket has a value
    limit: float | None = None    # a horizontal line (the timeout, the memory limit)
    limit_label: str = ""
    note: str = ""                # a sentence under the title
    width: int = WIDTH
    height: int = HEIGHT
    plot_bottom: int = TOP + PLOT_H
    plot_right: int = LEFT + PLOT_W
    left: int = LEFT
    columns: list = dataclasses.field(default_factory=list)
    lines: list = dataclasses.field(default_factory=list)
    y_ticks: list = dataclasses.field(default_factory=list)
    x_labels: list = dataclasses.field(default_factory=list)
    limit_y: float | None = None
    table_head: list = dataclasses.field(default_factory=list)
    table_rows: list = dataclasses.field(default_factory=list)

    @property
    def has_data(self):
        return any(v is not None and v != 0 for s in self.series for v in s.values)


def _nice_ceiling(value):
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above value."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def format_value(value, unit):
    if value is None:
        return "—"
    if value == 0 and unit != "%":
        return "0"
    if unit == "ms":
        if value >= 10_000:
            return f"{value / 1000:,.1f} s"
        return f"{value:,.0f} ms"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MB":
        return f"{value:,.0f} MB" if value >= 10 else f"{value:,.1f} MB"
    if unit == "runs" or unit == "attempts":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def axis_value(value, unit):
    """A tick label, short enough for the narrow margin: 2.5 s, 500 ms, 250 MB, 50 %."""
    if value == 0:
        return "0"
    if unit == "ms":
        return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"
    if unit in ("MB", "%"):
        return f"{value:g} {unit}"
    return f"{value:g}"


def build(chart, buckets, links, *, maximum=None):
    """Lay the chart out over the buckets; links[i] is bucket i's Runs URL (None: not linkable)."""
    n = len(buckets)
    slot = PLOT_W / n
    if chart.kind == "bars":
        totals = [sum(s.values[i] or 0 for s in chart.series) for i in range(n)]
        top = max(totals, default=0)
    else:
        top = max((v for s in chart.series for v in s.values if v is not None), default=0)
    counts = chart.unit in ("runs", "attempts")
    if maximum is not None:
        top = maximum
    else:
        if chart.limit is not None and top and chart.limit <= top * 1.5:
            top = max(top, chart.limit)     # the limit is near enough to draw on the same scale
        # Counts get whole-number ticks: a top of 2 is 0, 1, 2, never 1.25.
        top = max(1, math.ceil(top)) if counts and top <= 4 else _nice_ceiling(top * (1 if counts else 1.05))
        if counts and top % 2:
            top += 1 if top > 1 else 0

    def y(value):
        return TOP + PLOT_H - (value / top) * PLOT_H

    fractions = (0, 1) if counts and top == 1 else (0, 0.5, 1)
    chart.y_ticks = [(round(y(top * f), 1), axis_value(top * f, chart.unit)) for f in fractions]
    if chart.limit is not None and chart.limit <= top:
        chart.limit_y = round(y(chart.limit), 1)
    # At most seven labels, counted back from the newest, so they stay legible when the chart is phone-sized.
    labelled = [i for i, b in enumerate(buckets) if b.label]
    every = max(1, math.ceil(len(labelled) / 7))
    chart.x_labels = [
        (round(LEFT + slot * (i + 0.5), 1), buckets[i].label)
        for k, i in enumerate(labelled) if (len(labelled) - 1 - k) % every == 0
    ]
    for i, bucket in enumerate(buckets):
        x = LEFT + slot * i
        column = {
            "x": round(x, 1), "w": round(slot, 1), "href": links[i], "retained": bucket.retained,
            "title": bucket.title + "\n" + "\n".join(
                f"{s.label}: {format_value(s.values[i], chart.unit)}" for s in chart.series
            ),
            "bars": [],
        }
        if chart.kind == "bars":
            base = 0
            for s in chart.series:
                value = s.values[i] or 0
                if value:
                    column["bars"].append({
                        "key": s.key, "x": round(x + slot * 0.15, 1), "w": round(slot * 0.7, 1),
                        "y": round(y(base + value), 1), "h": round(y(base) - y(base + value), 1),
                    })
                base += value
        chart.columns.append(column)
    if chart.kind == "lines":
        for s in chart.series:
            points = [
                (round(LEFT + slot * (i + 0.5), 1), round(y(v), 1)) for i, v in enumerate(s.values) if v is not None
            ]
            chart.lines.append({"key": s.key, "label": s.label, "points": " ".join(f"{a},{b}" for a, b in points),
                                "dots": points})
    chart.table_head = ["Bucket"] + [s.label for s in chart.series]
    chart.table_rows = [
        (bucket.title, links[i], [format_value(s.values[i], chart.unit) for s in chart.series])
        for i, bucket in enumerate(buckets)
    ]
    return chart

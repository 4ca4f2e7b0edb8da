"""Every figure in one sentence, for a screen reader and for whoever cannot see the chart.

A figure function that knows what its chart says best puts the sentence in the figure itself
(`layout.meta["summary"]`, with `described`); any other figure is read from its traces: each
line from its first to its last point and where it peaks, each set of bars value by value, a
heatmap's range. The dashboard writes `summary(fig)` under each chart, a lesson under each figure.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

MOST = 10  # values read out per trace; a longer trace is read by its ends and its peak


def described(fig: go.Figure, sentence: str) -> go.Figure:
    """`fig` with its one-sentence summary stored in it (`summary` returns it)."""
    return fig.update_layout(meta={**_meta(fig), "summary": sentence})


def summary(fig: go.Figure) -> str:
    """The figure in one sentence: the one its function wrote, or one read from its traces."""
    said = _meta(fig).get("summary")
    if said:
        return said
    title = _plain(fig.layout.title.text or "The chart")
    parts = [p for trace in fig.data if (p := _trace(fig, trace))]
    return f"{title}: {'; '.join(parts)}." if parts else f"{title}: nothing drawn yet."


def _meta(fig: go.Figure) -> dict:
    meta = fig.layout.meta
    return dict(meta) if isinstance(meta, dict) else {}


def _plain(text: str) -> str:
    return text.replace("<br>", " ").strip().rstrip(".")


def _number(value, percent: bool, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "none"
    if isinstance(value, str):
        return value
    return f"{value:.0%}" if percent else f"{value:,.3g}{unit}"


def _unit(axis) -> str:
    """ " s" on an axis of seconds: a number read out without its unit says little."""
    return " s" if (axis.title.text or "").startswith("seconds") else ""


def _percent(axis) -> bool:
    return "%" in (axis.tickformat or "")


def _trace(fig: go.Figure, trace) -> str:
    name = f"{trace.name} " if trace.name else ""
    if isinstance(trace, go.Bar):
        horizontal = trace.orientation == "h"
        labels, values = (trace.y, trace.x) if horizontal else (trace.x, trace.y)
        percent = _percent(fig.layout.xaxis if horizontal else fig.layout.yaxis)
        pairs = list(zip(_seq(labels), _seq(values)))
        said = ", ".join(f"{label} {_number(v, percent)}" for label, v in pairs[:MOST])
        return f"{name}{said}" + (f" and {len(pairs) - MOST} more" if len(pairs) > MOST else "")
    if isinstance(trace, go.Heatmap):
        return _heatmap(trace)
    if isinstance(trace, go.Scatter | go.Scattergl) and trace.x is not None and trace.y is not None:
        percent, unit = _percent(fig.layout.yaxis), _unit(fig.layout.yaxis)
        points = [(x, y) for x, y in zip(_seq(trace.x), _seq(trace.y)) if y is not None and not _nan(y)]
        if not points:
            return ""
        if len(points) == 1:  # on a categorical axis, a point often stands at its own name
            at = "" if str(points[0][0]) == trace.name else f" at {points[0][0]}"
            return f"{name}{_number(points[0][1], percent, unit)}{at}"
        if trace.mode == "markers" and len(points) > MOST:  # a cloud of points, not a line
            return f"{name}{len(points)} points"
        (x0, y0), (x1, y1) = points[0], points[-1]
        xp, yp = max(points, key=lambda p: p[1])
        peak = "" if (xp, yp) in ((x0, y0), (x1, y1)) else f", highest {_number(yp, percent, unit)} at {xp}"
        return f"{name}from {_number(y0, percent, unit)} at {x0} to {_number(y1, percent, unit)} at {x1}{peak}"
    return ""


def _heatmap(trace) -> str:
    cells = [
        (v, y, x)
        for row, y in zip(trace.z, trace.y if trace.y is not None else range(len(trace.z)))
        for v, x in zip(row, trace.x if trace.x is not None else range(len(row)))
        if v is not None and not _nan(v)
    ]
    if not cells:
        return "no cell filled yet"
    (hi, yh, xh), (lo, yl, xl) = max(cells, key=lambda c: c[0]), min(cells, key=lambda c: c[0])
    return f"{len(cells)} cells, from {lo:.3g} (row {yl}, column {xl}) to {hi:.3g} (row {yh}, column {xh})"


def _seq(values) -> list:
    return [] if values is None else list(values)


def _nan(value) -> bool:
    return isinstance(value, float) and not math.isfinite(value)

"""Choices: which backbone to start from, whether tasks should share a network, and what a class
predicted before it ran a comparison."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import ARM_COLOURS, AXIS_TITLES, LAYOUT, _colour
from .summary import described

COST_TITLES = {
    "seconds": "seconds of training per run",
    "predict_images_per_s": "predictions per second (whole network)",
    "train_images_per_s": "training images per second",
    "parameters": "parameters",
}
SETTING_COLOURS = {"alone": "#7f7f7f", "together": "#1f77b4"}


def backbone_choice(table: pd.DataFrame, x: str = "seconds", title: str | None = None) -> go.Figure:
    """Test accuracy against a cost, a point per backbone (and arm), with the seed spread as bars.

    Args:
        table: `BackboneChoice.table`: a row per backbone and arm with test_accuracy,
            test_accuracy_spread (standard deviation over seeds; NaN with one seed) and `x`.
        x: the cost: "seconds" (training), "predict_images_per_s", "train_images_per_s" or
            "parameters". Up and to the left is better for seconds and parameters, up and to the
            right for the speeds.
    """
    several_arms = table.arm.nunique() > 1 if "arm" in table else False
    fig = go.Figure()
    for i, row in enumerate(table.itertuples(index=False)):
        name = f"{row.backbone} {row.arm}" if several_arms else row.backbone
        spread = float(row.test_accuracy_spread)
        known = bool(np.isfinite(spread))  # one seed has no spread
        fig.add_trace(
            go.Scatter(
                x=[getattr(row, x)],
                y=[row.test_accuracy],
                mode="markers+text",
                name=name,
                text=[name],
                textposition="top center",
                marker=dict(size=16, color=_colour(name, i)),
                error_y=dict(type="data", array=[spread if known else 0], visible=known),
            )
        )
    fig.update_layout(
        title=title or "Accuracy against cost (bars: std over seeds)",
        xaxis_title=COST_TITLES.get(x, x),
        yaxis_title=AXIS_TITLES["accuracy"],
        showlegend=False,
        **LAYOUT,
    )
    fig.update_yaxes(tickformat=".0%")
    if x == "parameters":
        fig.update_xaxes(type="log")
    else:  # room for the names beside the first and last points
        low, high = float(table[x].min()), float(table[x].max())
        pad = 0.2 * (high - low) or 0.2 * abs(high) or 1.0
        fig.update_xaxes(range=[low - pad, high + pad])
    said = "; ".join(f"{t.name} {t.y[0]:.1%} at {t.x[0]:,.3g}" for t in fig.data)
    return described(fig, f"Test accuracy against {COST_TITLES.get(x, x)}: {said}.")


def multitask_bars(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Each task's test accuracy trained alone and together: the mean over seeds as a bar, the
    range over seeds (min to max) as its error bar.

    Args:
        table: `MultitaskResult.table`: a row per task, setting ("alone" / "together") and seed.
    """
    fig = go.Figure()
    tasks = list(table.task.unique())
    for i, (setting, rows) in enumerate(table.groupby("setting", sort=False)):
        stats = rows.groupby("task").test_accuracy.agg(["mean", "min", "max"]).reindex(tasks)
        fig.add_trace(
            go.Bar(
                x=tasks,
                y=stats["mean"],
                name=setting,
                marker_color=SETTING_COLOURS.get(setting, _colour(setting, i)),
                text=[f"{a:.1%}" for a in stats["mean"]],
                textposition="inside",
                insidetextanchor="middle",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=stats["max"] - stats["mean"],
                    arrayminus=stats["mean"] - stats["min"],
                    visible=bool("seed" in rows and rows.seed.nunique() > 1),
                ),
            )
        )
    fig.update_layout(
        title=title or "Alone and together (bars: min to max over seeds)",
        barmode="group",
        xaxis_title="task",
        yaxis_title=AXIS_TITLES["accuracy"],
        **LAYOUT,
    )
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def predictions_histogram(
    gaps: Sequence[float], result: tuple[float, float, float] | None = None, title: str = "What the class predicted"
) -> go.Figure:
    """The room's predicted gaps (finetune - scratch, points) as a histogram; with `result`
    (gap, low, high in points), where the comparison came out: a line and its 95% interval."""
    fig = go.Figure(go.Histogram(x=list(gaps), xbins=dict(size=5), marker_color="#7f7f7f", name="predictions"))
    if result is not None:
        gap, low, high = result
        fig.add_vrect(x0=low, x1=high, fillcolor=ARM_COLOURS["finetune"], opacity=0.15, line_width=0)
        fig.add_vline(x=gap, line_color=ARM_COLOURS["finetune"], line_width=3, annotation_text=f"result {gap:+.1f}")
    fig.update_layout(
        title=title,
        xaxis_title="predicted gap: finetune - scratch (points; 0 is a tie)",
        yaxis_title="sessions",
        bargap=0.05,
        **LAYOUT,
    )
    return described(fig, _predictions_summary(pd.Series(list(gaps), dtype=float), result))


def _predictions_summary(gaps: pd.Series, result: tuple[float, float, float] | None) -> str:
    said = (
        f"{len(gaps)} prediction(s): {(gaps > 0).sum()} finetune ahead, {(gaps == 0).sum()} within noise, "
        f"{(gaps < 0).sum()} scratch ahead; median {gaps.median():+.0f} points."
    )
    if result is None:
        return said + " No result yet."
    gap, low, high = result
    right = ((gaps >= low) & (gaps <= high)).sum()
    interval = f"95% interval {low:+.1f} to {high:+.1f}"
    return said + f" The result: {gap:+.1f} points ({interval}); {right} guess(es) inside it."

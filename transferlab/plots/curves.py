"""Results against time and settings: learning curves, accuracy against a setting, transfer maps, bars."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import AXIS_TITLES, LAYOUT, _colour, _curve_layout
from .summary import described

# Arms differ by line style and marker as well as by colour: a chart read without colour still tells them apart.
ARM_DASHES = {"finetune": "solid", "scratch": "dash", "probe": "dot", "scratch_tuned": "longdash"}
ARM_MARKERS = {"finetune": "circle", "scratch": "square", "probe": "diamond", "scratch_tuned": "triangle-up"}


def curves_summary(history: pd.DataFrame, total_steps: int | None = None, metric: str = "accuracy") -> str:
    """`learning_curves` in one sentence, for a screen reader and for whoever cannot see the chart:
    "After 40 of 60 steps: finetune 66% on validation, scratch 24%; finetune ahead by 42 points."
    The lead is the latest validation points' difference, not a verdict (that comes from the test split)."""
    val = history[history.split == "val"]
    if val.empty:
        return "No validation point yet: the curves start at the first one."
    latest = val.groupby("arm", sort=False).last()
    step = int(val.step.max())
    when = f"After {step:,} of {total_steps:,} steps" if total_steps else f"After {step:,} steps"
    if metric == "loss":
        said = ", ".join(f"{arm} {row.loss:.2f}" for arm, row in latest.iterrows())
        return f"{when}: validation loss {said} (lower is better)."
    said = [f"{arm} {row.accuracy:.0%}" for arm, row in latest.iterrows()]
    text = f"{when}: {said[0]} on validation" + "".join(f", {s}" for s in said[1:])
    if len(latest) >= 2:
        ranked = latest.accuracy.sort_values(ascending=False)
        lead = (ranked.iloc[0] - ranked.iloc[1]) * 100
        text += f"; {ranked.index[0]} ahead of {ranked.index[1]} by {_points(lead)}" if lead >= 0.5 else "; level"
    test = history[history.split == "test"]
    if len(test):
        text += ". Test split: " + ", ".join(f"{r.arm} {r.accuracy:.1%}" for r in test.itertuples())
    return text + "."


def _points(value: float) -> str:
    return f"{value:.0f} point{'s' * int(round(value) != 1)}"


def learning_curves(
    history: pd.DataFrame, x: str = "step", metric: str = "accuracy", title: str | None = None
) -> go.Figure:
    """Validation curves of every arm (the `val` records), and the test split's point at the end.

    Args:
        history: records as a table (`ComparisonResult.history` or `History().frame()`).
        x: "step", "epoch", "seconds" or "images_seen".
        metric: "accuracy" or "loss".

    An arm measured once (a baseline such as "tfidf", fitted in one go) is a dashed level across
    the whole axis instead of a curve.
    """
    fig = go.Figure()
    span = [0, history[x].max()] if len(history) else [0, 1]
    for i, (arm, rows) in enumerate(history.groupby("arm", sort=False)):
        colour = _colour(arm, i)
        curve = rows[rows.split == "val"]
        level = len(curve) == 1
        fig.add_trace(
            go.Scatter(
                x=span if level else curve[x],
                y=list(curve[metric]) * 2 if level else curve[metric],
                mode="lines" if level else "lines+markers",
                name=arm,
                line=dict(color=colour, width=3, dash="dashdot" if level else ARM_DASHES.get(arm, "solid")),
                marker=dict(symbol=ARM_MARKERS.get(arm, "circle")),
                legendgroup=arm,
            )
        )
        final = rows[rows.split == "test"]
        if len(final):
            fig.add_trace(
                go.Scatter(
                    x=final[x],
                    y=final[metric],
                    mode="markers",
                    name=f"{arm} (test split)",
                    marker=dict(color=colour, size=14, symbol="star"),
                    legendgroup=arm,
                )
            )
    fig = _curve_layout(fig, title or f"Validation {metric} during training (star: test split)", x, metric)
    return described(fig, curves_summary(history, metric=metric))


def combine_histories(histories: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Several runs' records in one table, each arm renamed "<label> <arm>" (e.g. "k=4 finetune").

    A column `run` keeps the label and `base_arm` the arm's own name.
    """
    frames = [
        h.assign(run=label, base_arm=h.arm, arm=label + " " + h.arm.astype(str)) for label, h in histories.items()
    ]
    if not frames:
        return pd.DataFrame(columns=["arm", "run", "base_arm"])
    return pd.concat(frames, ignore_index=True)


def overlay_curves(
    histories: Mapping[str, pd.DataFrame], x: str = "step", metric: str = "accuracy", title: str | None = None
) -> go.Figure:
    """Validation curves of several runs in one figure: a colour per run, a line style per arm.

    Args:
        histories: run label (e.g. "k=4") -> that run's records (`ComparisonResult.history`).
        x: "step", "epoch", "seconds" or "images_seen".
        metric: "accuracy" or "loss".
    """
    # Not the arms' blue and red: here a colour names a run, and the line style names the arm.
    palette = ("#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")
    combined = combine_histories(histories)
    fig = go.Figure()
    for i, label in enumerate(histories):
        for arm, rows in combined[combined.run == label].groupby("base_arm", sort=False):
            curve = rows[rows.split == "val"]
            fig.add_trace(
                go.Scatter(
                    x=curve[x],
                    y=curve[metric],
                    mode="lines+markers",
                    name=f"{label} {arm}",
                    line=dict(color=palette[i % len(palette)], width=3, dash=ARM_DASHES.get(arm, "dashdot")),
                    legendgroup=label,
                )
            )
    return _curve_layout(
        fig, title or f"Validation {metric}: runs compared (solid: finetune, dashed: scratch)", x, metric
    )


def transfer_map(
    table: pd.DataFrame, value: str = "gap", title: str = "Transfer map: fine-tune minus scratch"
) -> go.Figure:
    """Heatmap of `value` over freeze depth x images per class: the mean over seeds, and the spread.

    `table` has columns freeze_depth, per_class and `value` ("gap", fine-tune minus scratch, on a
    red-blue scale around zero; or an accuracy such as "test_accuracy"), a row per cell and seed.
    For the gap, a cell whose 95% interval covers zero says "tie" (`transferlab.stats`: the
    interval paired over test images, `gap_low` to `gap_high`, for one seed; paired by seed for
    several). Cells not yet finished (NaN) stay blank, so a map can be drawn while it fills.
    """
    # A row per cell and seed: a sweep table repeats a cell's gap on each arm's row.
    cells = table.drop_duplicates(["freeze_depth", "per_class", "seed"]) if "seed" in table else table
    grouped = cells.groupby(["freeze_depth", "per_class"])[value]
    grid, spread = grouped.mean().unstack("per_class"), grouped.std().unstack("per_class")
    ties = _gap_ties(cells).reindex_like(grid) if value == "gap" and "gap_low" in cells else grid * np.nan
    finite = np.isfinite(grid.values.astype(float))
    if value == "gap":
        limit = float(np.nanmax(np.abs(grid.values.astype(float)))) if finite.any() else 1.0
        scale = dict(zmid=0, zmin=-limit, zmax=limit, colorscale="RdBu", colorbar_title="gap")
    else:
        scale = dict(zmin=0, zmax=1, colorscale="Blues", colorbar_title="accuracy")
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=[str(c) for c in grid.columns],
            y=grid.index,
            # In points, with the spread (standard deviation) over seeds when there are several.
            text=[
                [_gap_text(v, d, signed=value == "gap") + (" tie" if t == 1 else "") for v, d, t in zip(*r)]
                for r in zip(grid.values, spread.reindex_like(grid).values, ties.values)
            ],
            texttemplate="%{text}",
            **scale,
        )
    )
    fig.update_layout(
        title=title, xaxis_title=AXIS_TITLES["per_class"], yaxis_title=AXIS_TITLES["freeze_depth"], **LAYOUT
    )
    return described(fig, _map_summary(grid, ties, value))


def _map_summary(grid: pd.DataFrame, ties: pd.DataFrame, value: str) -> str:
    """The map in one sentence: how many cells, where it is highest and lowest, how many are ties."""
    cells = grid.stack().dropna()
    if cells.empty:
        return "Transfer map: no cell finished yet."
    (k_hi, n_hi), (k_lo, n_lo) = cells.idxmax(), cells.idxmin()
    unit = (lambda v: f"{v * 100:+.0f} points") if value == "gap" else (lambda v: f"{v:.0%}")
    what = "fine-tune minus scratch" if value == "gap" else value.replace("_", " ")
    text = (
        f"Transfer map of {what}, {len(cells)} of {grid.size} cells finished: highest {unit(cells.max())} "
        f"at k = {k_hi}, {n_hi} per class; lowest {unit(cells.min())} at k = {k_lo}, {n_lo} per class"
    )
    tied = int(np.nansum(ties.values == 1))
    return text + (f"; {tied} cell{'s' * (tied != 1)} within noise of zero (tie)." if value == "gap" else ".")


def _gap_ties(cells: pd.DataFrame) -> pd.DataFrame:
    """Per cell (depth x size): 1 where the gap's 95% interval covers zero, 0 where it does not, NaN
    where the cell is not finished."""
    from transferlab.stats import seed_difference

    def tie(group: pd.DataFrame) -> float:
        group = group.dropna(subset=["gap"])
        if len(group) == 0:
            return float("nan")
        if len(group) == 1:
            low, high = group.gap_low.iloc[0], group.gap_high.iloc[0]
        else:  # the gap per seed, paired, and the test images' noise, shared by every seed (so not divided by k)
            d = seed_difference(dict(zip(group.seed, group.gap)), dict.fromkeys(group.seed, 0.0))
            test_half = ((group.gap_high - group.gap_low) / 2).mean()
            half = float(np.hypot((d.high - d.low) / 2, test_half))
            low, high = d.estimate - half, d.estimate + half
        return float(low <= 0 <= high)

    return (
        cells.groupby(["freeze_depth", "per_class"])[["seed", "gap", "gap_low", "gap_high"]]
        .apply(tie)
        .unstack("per_class")
    )


def _gap_text(value: float, spread: float, signed: bool = True) -> str:
    if not np.isfinite(value):
        return ""
    return f"{value * 100:{'+' if signed else ''}.0f}" + (f" ±{spread * 100:.0f}" if np.isfinite(spread) else "")


def transfer_points(table: pd.DataFrame, title: str = "Transfer map: fine-tune minus scratch") -> go.Figure:
    """Each finished comparison as a point on images per class (log) x freeze depth, coloured by its gap.

    `table` has columns per_class, freeze_depth and gap, a row per comparison; points at the same
    place (several seeds) are averaged, and their count shown. The map fills as a class runs it.
    """
    t = table.dropna(subset=["per_class", "gap"])
    t = t.groupby(["per_class", "freeze_depth"]).gap.agg(["mean", "count"]).reset_index()
    limit = float(t["mean"].abs().max()) if len(t) else 1.0
    fig = go.Figure(
        go.Scatter(
            x=t.per_class,
            y=t.freeze_depth,
            mode="markers+text",
            textposition="top center",  # beside the marker: readable on the darkest colour too
            marker=dict(
                size=26,
                color=t["mean"],
                colorscale="RdBu",
                cmid=0,
                cmin=-(limit or 1),
                cmax=limit or 1,
                colorbar=dict(title="gap", tickformat="+.0%"),
                line=dict(color="#444", width=1),
            ),
            text=[f"{g * 100:+.0f}" for g in t["mean"]],
            customdata=t["count"],
            hovertemplate="%{x} per class, k = %{y}: %{text} points (%{customdata} run(s))<extra></extra>",
        )
    )
    fig.update_layout(
        title=title, xaxis_title=AXIS_TITLES["per_class"], yaxis_title=AXIS_TITLES["freeze_depth"], **LAYOUT
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(dtick=1)
    if t.empty:
        return described(fig, "Transfer map: no comparison finished yet.")
    hi, lo = t.loc[t["mean"].idxmax()], t.loc[t["mean"].idxmin()]
    return described(
        fig,
        f"Transfer map, {int(t['count'].sum())} comparison(s) at {len(t)} place(s): fine-tune minus scratch "
        f"highest {hi['mean'] * 100:+.0f} points at {hi.per_class:g} per class, k = {hi.freeze_depth:g}; "
        f"lowest {lo['mean'] * 100:+.0f} points at {lo.per_class:g} per class, k = {lo.freeze_depth:g}.",
    )


def accuracy_against(
    table: pd.DataFrame,
    x: str,
    y: str = "test_accuracy",
    colour: str = "arm",
    log_x: bool = False,
    title: str | None = None,
    levels: Mapping[str, float] | None = None,
) -> go.Figure:
    """Lines of `y` against `x`, one per value of `colour`; mean and min-max band over seeds.

    `levels`: name -> value, each drawn as a dashed level across the plot (e.g. a zero-shot
    accuracy, which needs no labels, beside curves against labels per class)."""
    fig = go.Figure()
    for i, (name, rows) in enumerate(table.groupby(colour, sort=False)):
        stats = rows.groupby(x)[y].agg(["mean", "min", "max"]).reset_index()
        c = _colour(str(name), i)
        fig.add_trace(
            go.Scatter(
                x=stats[x],
                y=stats["mean"],
                mode="lines+markers",
                name=str(name),
                line=dict(color=c, width=3),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=stats["max"] - stats["mean"],
                    arrayminus=stats["mean"] - stats["min"],
                    visible=len(rows) > len(stats),
                ),
            )
        )
    fig.update_layout(
        title=title or f"{AXIS_TITLES.get(y, y)} against {AXIS_TITLES.get(x, x)}",
        xaxis_title=AXIS_TITLES.get(x, x),
        yaxis_title=AXIS_TITLES.get(y, y),
        **LAYOUT,
    )
    span = [table[x].min(), table[x].max()]
    for name, value in (levels or {}).items():
        fig.add_trace(
            go.Scatter(
                x=span,
                y=[value, value],
                mode="lines",
                name=name,
                line=dict(color=_colour(name, len(fig.data)), width=2, dash="dash"),
            )
        )
    if log_x:
        fig.update_xaxes(type="log")
    if "accuracy" in y:
        fig.update_yaxes(tickformat=".0%")
    return fig


def accuracy_bars(table: pd.DataFrame, label: str = "arm", title: str = "Test accuracy") -> go.Figure:
    """One horizontal bar per row of `table` (its `label` and `test_accuracy`), best at the top."""
    t = table.sort_values("test_accuracy", ascending=False)
    names = [str(v) for v in t[label]]
    fig = go.Figure(
        go.Bar(
            x=t.test_accuracy,
            y=names,
            orientation="h",
            marker_color=[_colour(n, i) for i, n in enumerate(names)],
            text=[f"{a:.1%}" for a in t.test_accuracy],
            textposition="auto",
        )
    )
    fig.update_layout(title=title, height=120 + 45 * len(t), **LAYOUT)
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title=AXIS_TITLES["accuracy"])
    fig.update_yaxes(autorange="reversed")
    return fig


def train_test_gap(
    table: pd.DataFrame, x: str = "per_class", arm: str | None = None, log_x: bool = True, title: str | None = None
) -> go.Figure:
    """Training accuracy (dashed) against test accuracy (solid) per arm: the gap is overfitting.

    `table` is a sweep table with `train_accuracy` and `test_accuracy`; `arm` keeps one arm.
    """
    t = table if arm is None else table[table.arm == arm]
    fig = go.Figure()
    for i, (name, rows) in enumerate(t.groupby("arm", sort=False)):
        stats = rows.groupby(x)[["train_accuracy", "test_accuracy"]].mean().reset_index()
        c = _colour(str(name), i)
        for column, dash in (("train_accuracy", "dash"), ("test_accuracy", "solid")):
            fig.add_trace(
                go.Scatter(
                    x=stats[x],
                    y=stats[column],
                    mode="lines+markers",
                    name=f"{name}, {column.split('_')[0]}",
                    line=dict(color=c, width=3, dash=dash),
                )
            )
    fig.update_layout(
        title=title or "Training accuracy (dashed) against test accuracy (solid)",
        xaxis_title=AXIS_TITLES.get(x, x),
        yaxis_title="accuracy",
        **LAYOUT,
    )
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    if log_x:
        fig.update_xaxes(type="log")
    return fig

"""Every figure the kit shows: pure functions from data to a Plotly `Figure`.

The notebook cell ends with `fig`; the dashboard calls `st.plotly_chart(fig)`. Neither draws
its own charts, so a lesson and the dashboard always show the same picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

__all__ = [
    "ARM_COLOURS",
    "accuracy_against",
    "accuracy_bars",
    "combine_histories",
    "confusion_matrix",
    "embedding_scatter",
    "first_layer_filters",
    "freeze_diagram",
    "image_grid",
    "learning_curves",
    "misclassified_grid",
    "overlay_curves",
    "per_class_accuracy",
    "prediction_bars",
    "train_test_gap",
    "transfer_map",
    "transfer_points",
]

# Fixed colours per arm, so "finetune" is the same blue in every lesson and on the dashboard.
ARM_COLOURS = {
    "finetune": "#1f77b4",
    "scratch": "#d62728",
    "probe": "#2ca02c",
    "pixels": "#7f7f7f",
    "source": "#9467bd",
    "centroid": "#ff7f0e",
    "train": "#9e9e9e",
}
AXIS_TITLES = {
    "step": "optimiser step",
    "epoch": "epoch (passes over the training images)",
    "seconds": "seconds of training",
    "images_seen": "images seen",
    "accuracy": "accuracy",
    "loss": "loss",
    "per_class": "images per class",
    "freeze_depth": "freeze depth k (blocks frozen)",
}
LAYOUT = dict(template="plotly_white", font=dict(size=15), margin=dict(l=60, r=20, t=60, b=50))


def _colour(arm: str, i: int) -> str:
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
    return ARM_COLOURS.get(arm, palette[i % len(palette)])


def _curve_layout(fig: go.Figure, title: str, x: str, metric: str) -> go.Figure:
    """Titles and axes shared by every curve figure; accuracy on a fixed 0-100 % axis."""
    fig.update_layout(
        title=title, xaxis_title=AXIS_TITLES.get(x, x), yaxis_title=AXIS_TITLES.get(metric, metric), **LAYOUT
    )
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def learning_curves(
    history: pd.DataFrame, x: str = "step", metric: str = "accuracy", title: str | None = None
) -> go.Figure:
    """Validation curves of every arm (the `val` records), and the test split's point at the end.

    Args:
        history: records as a table (`ComparisonResult.history` or `History().frame()`).
        x: "step", "epoch", "seconds" or "images_seen".
        metric: "accuracy" or "loss".
    """
    fig = go.Figure()
    for i, (arm, rows) in enumerate(history.groupby("arm", sort=False)):
        colour = _colour(arm, i)
        curve = rows[rows.split == "val"]
        fig.add_trace(
            go.Scatter(
                x=curve[x],
                y=curve[metric],
                mode="lines+markers",
                name=arm,
                line=dict(color=colour, width=3),
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
    return _curve_layout(fig, title or f"Validation {metric} during training (star: test split)", x, metric)


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


ARM_DASHES = {"finetune": "solid", "scratch": "dash", "probe": "dot"}


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


def freeze_diagram(summary: pd.DataFrame, title: str | None = None) -> go.Figure:
    """One bar per block (and the head), width by parameters: grey frozen, blue trained."""
    trained = summary.trainable
    share = summary.loc[trained, "parameters"].sum() / max(1, summary.parameters.sum())
    fig = go.Figure(
        go.Bar(
            x=summary.block,
            y=summary.parameters,
            marker_color=np.where(trained, "#1f77b4", "#bdbdbd"),
            text=np.where(trained, "trained", "frozen"),
            textposition="outside",
            hovertemplate="%{x}: %{y:,} parameters, %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"{share:.0%} of parameters train", yaxis_title="parameters", showlegend=False, **LAYOUT
    )
    return fig


def confusion_matrix(
    labels: torch.Tensor | np.ndarray,
    predictions: torch.Tensor | np.ndarray,
    classes: Sequence[str],
    title: str = "Confusion matrix",
) -> go.Figure:
    """Rows: true class; columns: predicted class; each row as fractions of that class."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    k = len(classes)
    counts = np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)
    frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig = go.Figure(
        go.Heatmap(
            z=frac,
            x=list(classes),
            y=list(classes),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=counts,
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", **LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def per_class_accuracy(
    labels: torch.Tensor,
    predictions: dict[str, torch.Tensor],
    classes: Sequence[str],
    title: str = "Accuracy per class",
) -> go.Figure:
    """Grouped bars: each arm's test accuracy on each class."""
    labels = np.asarray(labels)
    fig = go.Figure()
    for i, (arm, preds) in enumerate(predictions.items()):
        preds = np.asarray(preds)
        acc = [float((preds[labels == c] == c).mean()) for c in range(len(classes))]
        fig.add_trace(go.Bar(x=list(classes), y=acc, name=arm, marker_color=_colour(arm, i)))
    fig.update_layout(title=title, barmode="group", yaxis_title="accuracy", **LAYOUT)
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def image_grid(images: torch.Tensor, captions: Sequence[str], columns: int = 6, title: str = "") -> go.Figure:
    """uint8 images (N, C, H, W) in a grid, each with its caption."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = make_subplots(
        rows=rows, cols=columns, subplot_titles=list(captions), horizontal_spacing=0.01, vertical_spacing=0.12
    )
    for i, img in enumerate(images):
        img = img.expand(3, -1, -1) if img.shape[0] == 1 else img
        # A PNG data URI instead of a pixel array: a 96 px photo is ~15 KB in a notebook, not ~300 KB.
        fig.add_trace(go.Image(source=_png_uri(img)), row=i // columns + 1, col=i % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, height=60 + 170 * rows, **{**LAYOUT, "margin": dict(l=10, r=10, t=70, b=10)})
    return fig


def _png_uri(image: torch.Tensor) -> str:
    """A (3, H, W) uint8 image as a base64 PNG data URI."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def misclassified_grid(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor,
    classes: Sequence[str],
    limit: int = 12,
    columns: int = 6,
    title: str = "Mistakes",
) -> go.Figure:
    """The first `limit` test images a model got wrong, each captioned with its prediction and truth."""
    labels, predictions = torch.as_tensor(labels).cpu(), torch.as_tensor(predictions).cpu()
    wrong = torch.nonzero(predictions != labels).flatten()[:limit]
    if len(wrong) == 0:
        fig = go.Figure()
        fig.add_annotation(text="no mistakes on the test split", showarrow=False, font_size=18)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_layout(title=title, height=200, **LAYOUT)
        return fig
    captions = [f"{classes[int(predictions[i])]}<br>(true: {classes[int(labels[i])]})" for i in wrong]
    return image_grid(torch.as_tensor(images).cpu()[wrong], captions, columns=min(columns, len(wrong)), title=title)


def transfer_map(table: pd.DataFrame, title: str = "Transfer map: fine-tune minus scratch") -> go.Figure:
    """Heatmap of the fine-tune-minus-scratch gap over freeze depth x images per class.

    `table` has columns freeze_depth, per_class and gap (averaged over seeds when repeated).
    """
    grid = table.groupby(["freeze_depth", "per_class"]).gap.mean().unstack("per_class")
    limit = float(np.nanmax(np.abs(grid.values))) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=[str(c) for c in grid.columns],
            y=grid.index,
            zmid=0,
            zmin=-limit,
            zmax=limit,
            colorscale="RdBu",
            colorbar_title="gap",
            text=np.vectorize(lambda v: f"{v * 100:+.0f}")(grid.values),
            texttemplate="%{text}",
        )
    )
    fig.update_layout(
        title=title, xaxis_title=AXIS_TITLES["per_class"], yaxis_title=AXIS_TITLES["freeze_depth"], **LAYOUT
    )
    return fig


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
    return fig


def accuracy_against(
    table: pd.DataFrame,
    x: str,
    y: str = "test_accuracy",
    colour: str = "arm",
    log_x: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Lines of `y` against `x`, one per value of `colour`; mean and min-max band over seeds."""
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
    if log_x:
        fig.update_xaxes(type="log")
    if "accuracy" in y:
        fig.update_yaxes(tickformat=".0%")
    return fig


def prediction_bars(top: Sequence[tuple[str, float]], title: str = "") -> go.Figure:
    """Horizontal bars of (class name, probability), best at the top."""
    names, probs = zip(*top)
    fig = go.Figure(
        go.Bar(
            x=list(probs),
            y=list(names),
            orientation="h",
            marker_color="#1f77b4",
            text=[f"{p:.1%}" for p in probs],
            textposition="auto",
        )
    )
    fig.update_layout(title=title, xaxis=dict(range=[0, 1], tickformat=".0%"), height=300, **LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def first_layer_filters(weight: torch.Tensor, columns: int = 8, title: str = "First-layer filters") -> go.Figure:
    """Conv filters (O, 3, k, k) as small RGB images, each scaled to its own range."""
    w = weight.detach().float().cpu()
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    images = ((w - lo) / (hi - lo + 1e-8) * 255).to(torch.uint8)
    return image_grid(images, [""] * len(images), columns=columns, title=title)


def embedding_scatter(points: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str = "") -> go.Figure:
    """A 2-D map of images (PCA or t-SNE of their features), coloured by class."""
    fig = go.Figure()
    for c, name in enumerate(classes):
        mask = np.asarray(labels) == c
        fig.add_trace(
            go.Scattergl(
                x=points[mask, 0], y=points[mask, 1], mode="markers", name=name, marker=dict(size=6, opacity=0.7)
            )
        )
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, **LAYOUT)
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

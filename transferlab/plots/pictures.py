"""What a network sees and gets wrong: images, filters, feature maps, confusion, per-class results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .style import LAYOUT, _colour
from .summary import _plain, described


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
    frozen = list(summary.loc[~trained, "block"])
    return described(
        fig,
        f"{share:.0%} of the {summary.parameters.sum():,} parameters train: "
        + (f"blocks {', '.join(map(str, frozen))} frozen, the rest trained." if frozen else "nothing is frozen."),
    )


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
    mistakes = counts - np.diag(np.diag(counts))
    right = np.trace(counts) / max(counts.sum(), 1)
    if mistakes.sum() == 0:
        return described(fig, f"{_plain(title)}: every one of {counts.sum()} test images right.")
    worst = sorted(((mistakes[i, j], i, j) for i in range(k) for j in range(k)), reverse=True)[:3]
    said = "; ".join(f"{classes[i]} taken for {classes[j]} {n} time{'s' * int(n != 1)}" for n, i, j in worst if n)
    return described(fig, f"{_plain(title)}: {right:.0%} of {counts.sum()} test images right; most confused: {said}.")


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
    named = Counter(_plain(c) for c in captions if c)  # in order; a caption shared by several images, once
    listed = [f"{c} ({k})" if k > 1 else c for c, k in named.items()]
    said = f", captioned: {'; '.join(listed[:12])}" + (f"; and {len(listed) - 12} more" if len(listed) > 12 else "")
    return described(fig, f"{_plain(title) or 'Images'}: {n} image{'s' * (n != 1)}{said if named else ''}.")


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
    fig = image_grid(images, [""] * len(images), columns=columns, title=title)
    return described(
        fig, f"{_plain(title)}: {len(images)} filters of {w.shape[2]} x {w.shape[3]} pixels, each as a colour image."
    )


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
    return described(
        fig,
        f"{_plain(title) or 'A map of images'}: {len(points)} images as points, coloured by class "
        f"({', '.join(classes)}); images with similar features lie close together.",
    )


def weight_change(table: pd.DataFrame, title: str = "Where the network changed") -> go.Figure:
    """Each block's relative weight change over a run (||w - w0|| / ||w0||), one group of bars per arm.

    `table` is a result table (a row per arm with `freeze_depth` and `change:<block>` columns, as
    `Run.row()` writes them). Frozen blocks did not move: they are labelled "frozen" at zero.
    """
    blocks = [c.split(":", 1)[1] for c in table.columns if c.startswith("change:")]
    fig = go.Figure()
    for i, row in enumerate(table.to_dict("records")):
        values = [row[f"change:{b}"] for b in blocks]
        frozen = [j < row["freeze_depth"] for j in range(len(blocks))]
        fig.add_trace(
            go.Bar(
                name=row["arm"],
                x=blocks,
                y=[0 if f else v for v, f in zip(values, frozen)],
                marker_color=_colour(row["arm"], i),
                text=["frozen" if f else f"{v:.0%}" if v >= 0.01 else f"{v:.1%}" for v, f in zip(values, frozen)],
                textposition="outside",
                cliponaxis=False,
            )
        )
    fig.update_layout(title=title, barmode="group", **LAYOUT)
    fig.update_yaxes(title="relative weight change", tickformat=".0%", rangemode="tozero")
    return fig

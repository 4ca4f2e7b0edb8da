"""Colours, axis titles and the layout every figure shares."""

from __future__ import annotations

import plotly.graph_objects as go

ARM_COLOURS = {
    "finetune": "#1f77b4",
    "scratch": "#d62728",
    "probe": "#2ca02c",
    "pixels": "#7f7f7f",
    "tfidf": "#8c564b",
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

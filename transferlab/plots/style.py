"""Colours, axis titles and the layout every figure shares."""

from __future__ import annotations

import plotly.graph_objects as go

# The Okabe-Ito palette: told apart with every common colour-vision deficiency (and in grey, by
# the curves' line styles and markers, `curves.ARM_DASHES`).
ARM_COLOURS = {
    "finetune": "#0072B2",  # blue
    "scratch": "#D55E00",  # vermillion
    "probe": "#009E73",  # bluish green
    "pixels": "#999999",  # grey
    "tfidf": "#CC79A7",  # reddish purple
    "source": "#56B4E9",  # sky blue
    "centroid": "#E69F00",  # orange
    "train": "#BBBBBB",  # light grey
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
    palette = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#999999", "#F0E442")
    return ARM_COLOURS.get(arm, palette[i % len(palette)])


def _curve_layout(fig: go.Figure, title: str, x: str, metric: str) -> go.Figure:
    """Titles and axes shared by every curve figure; accuracy on a fixed 0-100 % axis."""
    fig.update_layout(
        title=title, xaxis_title=AXIS_TITLES.get(x, x), yaxis_title=AXIS_TITLES.get(metric, metric), **LAYOUT
    )
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig

"""Every chart on the page with its one-sentence summary under it, where a screen reader reaches it."""

from __future__ import annotations

import html

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from transferlab import plots


def chart(fig: go.Figure, key: str, where: DeltaGenerator | None = None, **options) -> None:
    """`fig`, and under it `plots.summary(fig)`: the same numbers in words, updated with the chart."""
    where = st if where is None else where
    where.plotly_chart(fig, theme=None, key=key, **options)
    said = html.escape(plots.summary(fig))
    where.markdown(f'<p class="chart-summary" role="note">{said}</p>', unsafe_allow_html=True)

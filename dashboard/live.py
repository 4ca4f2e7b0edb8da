"""A comparison in the queue or training, redrawn from its record stream; the curves of any job."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from transferlab import device_name, pick_device, plots
from transferlab.serve import DEFAULT_STEPS, QUEUED, Job

X_AXES = {"step": "step", "epoch": "epoch", "seconds": "seconds", "images_seen": "images seen"}
REFRESH_SECONDS = {"cuda": 0.5, "cpu": 1.0}  # how often a running job's charts are redrawn, by device
WAITING_REFRESH_SECONDS = 4.0  # how often a page waiting in the queue checks its place
STOP_HELP = "Stops within one batch. A comparison other sessions asked for too goes on for them."
CHART_HEIGHT = 420  # pixels: the controls and both curves fit on one projected screen


@st.cache_resource(max_entries=64, show_spinner=False)
def curve_figure(job_id: int, n_records: int, x: str, metric: str, steps: int, _history: pd.DataFrame):
    """A job's learning curves, built once per new record: redraws without news cost no figure building.

    Records only ever append, so (job, number of records) names the history; `_history` is not hashed.
    """
    fig = plots.learning_curves(_history, x=x, metric=metric)
    if x == "step":  # the whole run's axis from the start: the curves grow across it
        fig.update_xaxes(range=[0, steps * 1.02])
    return fig


def x_axis_ui() -> str:
    """The curves' horizontal axis: optimiser steps, epochs, seconds of training, or images seen."""
    x = st.segmented_control(
        "Horizontal axis", list(X_AXES), format_func=X_AXES.get, default="step", required=True, key="x_axis"
    )
    return x or "step"


def curves_ui(job: Job, x: str) -> None:
    """Validation accuracy and loss of both arms, side by side (a star: the test split, at the end)."""
    history = job.history()
    summary = html.escape(plots.curves_summary(history, job.steps or None))
    # A live region: a screen reader hears the curves as they move, and a sighted reader can skip the charts.
    st.markdown(f'<p class="curves-summary" role="status" aria-live="polite">{summary}</p>', unsafe_allow_html=True)
    left, right = st.columns(2)
    for column, metric in ((left, "accuracy"), (right, "loss")):
        fig = curve_figure(job.id, len(history), x, metric, job.steps, history)
        column.plotly_chart(fig, theme=None, height=CHART_HEIGHT, key=f"job{job.id}-{metric}")


def status_ui(job: Job) -> None:
    """Where the job is: in the queue, training (progress, device, throughput), or finishing."""
    if job.status == QUEUED:
        ahead = job.position or 0
        st.info(
            f"Waiting for a worker: {ahead} run{'s' if ahead != 1 else ''} ahead of yours. "
            "The server takes every session's runs in turn."
            if ahead
            else "Starting..."
        )
        return
    st.progress(job.progress, text=f"{job.phase}: {job.progress:.0%}")
    speed = job.images_per_second
    st.markdown(
        f"**Device** {job.device or device_name(pick_device())} &nbsp;·&nbsp; "
        f"**Throughput** {f'{speed:,.0f} images/s' if speed else '...'} &nbsp;·&nbsp; **Elapsed** {job.elapsed:.0f} s"
    )


def arms_shared(job: Job) -> str:
    """Which of a comparison's arms come from elsewhere: the run store, or a run others wait for too."""
    notes = []
    for part in getattr(job, "parts", ()):
        if part.reused:
            notes.append(f"{part.arms[0]} comes from the run store")
        elif others := len(part.owners - job.owners):
            notes.append(f"{part.arms[0]} trains once for this and {others} other session(s)")
    return ("Shared: " + "; ".join(notes) + ".") if notes else ""


def live_ui(job: Job) -> None:
    """A job in the queue or training: redrawn every second or so while it trains; while it waits,
    only checked every few seconds, and the page redrawn when its place in the queue changes."""
    st.markdown(f"#### {run_title(job)}")
    if len(job.owners) > 1:
        st.caption(f"{len(job.owners) - 1} other session(s) asked for the same comparison: it trains once for all.")
    if shared := arms_shared(job):
        st.caption(shared)
    if job.status == QUEUED:
        info_col, stop_col = st.columns([9, 1], vertical_alignment="bottom")
        with info_col:
            status_ui(job)
        stop_button(stop_col, job)
        st.fragment(run_every=WAITING_REFRESH_SECONDS)(watch_queue)(job, job.position)
    else:
        st.fragment(run_every=REFRESH_SECONDS.get(pick_device().type, 1.0))(live_view)(job)


def watch_queue(job: Job, position: int | None) -> None:
    """Draws nothing: a waiting page costs the server and the browser (measured: seven waiting pages
    that redrew every second took a third of a core in Chromium, from a 2-core server) almost nothing."""
    if job.status != QUEUED or job.position != position:
        st.rerun()  # the whole page: its new place, or the live view


def live_view(job: Job) -> None:
    if job.done:
        st.rerun()  # the whole page: the verdict and the Run button back
    status_col, axis_col, stop_col = st.columns([6, 3, 1], vertical_alignment="bottom")
    with status_col:
        status_ui(job)
    with axis_col:
        x = x_axis_ui()
    stop_button(stop_col, job)
    curves_ui(job, x)


def stop_button(column: DeltaGenerator, job: Job) -> None:
    sid = st.session_state.sid
    column.button("Stop", key=f"stop-{job.id}", on_click=job.stop, args=(sid,), width="stretch", help=STOP_HELP)


def run_title(job: Job) -> str:
    c = job.config
    return (
        f"{c.backbone} on {c.dataset}, k={c.freeze_depth}, {c.per_class or 'all'} per class, "
        f"{budget(c)}, {c.size} px, seed {c.seed}"
    )


def budget(config) -> str:
    return f"{config.epochs} epochs" if config.epochs else f"{config.steps or DEFAULT_STEPS} steps"

"""The class board (`?view=board`): every comparison on the server, live and anonymous, for the projector.

The queue, each finished comparison's verdict, the test-accuracy curves of the running and the
latest comparisons overlaid, and the transfer map the class builds together: each comparison a
point on images per class x freeze depth, coloured by how much fine-tuning beat scratch.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import chart
from dashboard.predict import class_predictions_ui
from transferlab import plots
from transferlab.serve import DEFAULT_STEPS, EXPORT, Job, JobQueue, RunStore

REFRESH_SECONDS = 4.0  # live enough for a projector; every redraw costs the page server CPU that training needs
LATEST = 4  # finished comparisons whose curves the board overlays
VERDICTS = 30  # finished comparisons listed


def setting(c) -> str:
    """A comparison's settings in one short label (from a config or a store row)."""
    n = "all" if c.per_class is None or pd.isna(c.per_class) else int(c.per_class)
    budget = (
        f"{int(c.epochs)} ep" if c.epochs is not None and not pd.isna(c.epochs) else f"{c.steps or DEFAULT_STEPS} steps"
    )
    return f"k={c.freeze_depth} n={n} {budget} seed {c.seed}"


@st.cache_data(max_entries=16, show_spinner=False)
def latest_histories(ids: tuple[int, ...], _store: RunStore) -> dict[int, pd.DataFrame]:
    """Finished comparisons never change: their curves are read from the store once."""
    return _store.histories(list(ids))


def queue_ui(jobs: list[Job]) -> None:
    st.subheader(f"Queue: {len(jobs)} job(s)")
    if not jobs:
        st.caption("Nothing is training. Press Run on the dashboard, and it shows up here.")
        return
    rows = [
        {
            "place": job.position,
            "status": job.status,
            "kind": job.kind,
            "backbone": job.config.backbone if job.config else "",
            "dataset": dataset_shown(job),
            "settings": setting(job.config) if job.config else "",
            "progress": job.progress,
            "sessions": len(job.owners),
        }
        for job in jobs
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")},
    )


def dataset_shown(job: Job) -> str:
    """The dataset a run trains on, but never the name of a session's own images (nor an import's)."""
    if job.config is None or "/" in job.config.dataset:
        return "(someone's own images)" if job.kind != EXPORT else ""
    return job.config.dataset


def interval(low: float, high: float) -> str:
    """The gap's 95% interval in points, and "tie" where it covers zero (`transferlab.stats`)."""
    if pd.isna(low) or pd.isna(high):
        return ""
    return f"{low * 100:+.1f} to {high * 100:+.1f}" + (" (tie)" if low <= 0 <= high else "")


def verdicts_ui(runs: pd.DataFrame) -> None:
    st.subheader("Verdicts")
    if runs.empty:
        st.caption("No comparison has finished on this server yet.")
        return
    table = pd.DataFrame(
        {
            "backbone": runs.backbone,
            "dataset": runs.dataset,
            "settings": [setting(r) for r in runs.itertuples()],
            "finetune": runs.finetune,
            "scratch": runs.scratch,
            "gap (points)": runs.gap * 100,
            "95% interval": [interval(r.gap_low, r.gap_high) for r in runs.itertuples()],
            "seconds": runs.elapsed,
        }
    )
    st.caption(
        "Each comparison is one training draw of each arm, judged alone on its own test images: exploratory. "
        "Rows shown together are not adjusted for each other, and a row says which trained models won, not "
        "which method: run more seeds for that."
    )
    st.dataframe(
        table.head(VERDICTS),
        hide_index=True,
        column_config={
            "finetune": st.column_config.NumberColumn(format="percent"),
            "scratch": st.column_config.NumberColumn(format="percent"),
            "gap (points)": st.column_config.NumberColumn(format="%+.1f"),
        },
    )


def curves_ui(running: list[Job], runs: pd.DataFrame, store: RunStore) -> None:
    latest = runs.head(LATEST)
    histories = {f"{setting(job.config)} (running)": job.history() for job in running}
    stored = latest_histories(tuple(latest.id), store)
    histories |= {f"#{r.id} {setting(r)}": stored[r.id] for r in latest.itertuples()}
    histories = {label: h for label, h in histories.items() if not h.empty}
    if histories:
        fig = overlay_figure(tuple((label, len(h)) for label, h in histories.items()), histories)
        chart(fig, key="board-curves")


@st.cache_resource(max_entries=8, show_spinner=False)
def overlay_figure(curves: tuple[tuple[str, int], ...], _histories: dict[str, pd.DataFrame]):
    """Built once per new record: records only append, so (label, number of records) names the curves."""
    return plots.overlay_curves(_histories, x="step")


def map_ui(runs: pd.DataFrame) -> None:
    both = runs.dropna(subset=["gap"])
    if both.empty:
        return
    pairs = (both.backbone + " on " + both.dataset).value_counts()
    pair = st.selectbox("Transfer map of", list(pairs.index), key="board-pair")
    points = both[(both.backbone + " on " + both.dataset) == pair]
    chart(map_figure(pair, tuple(points.id), points), key="board-map")


@st.cache_resource(max_entries=4, show_spinner=False)
def map_figure(pair: str, ids: tuple[int, ...], _points: pd.DataFrame):
    """Built once per new finished comparison: a stored comparison never changes."""
    return plots.transfer_points(_points, title=f"The class's transfer map: {pair}")


def live_board(queue: JobQueue, store: RunStore) -> None:
    jobs = queue.jobs()
    runs = store.comparisons(limit=200)
    runs = runs[~runs.dataset.str.contains("/", regex=False)]  # a session's own images are its own
    runs = runs[runs.finetune.notna() & runs.scratch.notna()]  # comparisons, not the arms stored to share them
    left, right = st.columns([5, 6], gap="medium")
    with left:
        queue_ui(jobs)
        verdicts_ui(runs)
    with right:
        map_ui(runs)
        class_predictions_ui(store, runs)
    running = [job for job in jobs if job.status == "running" and job.config and "/" not in job.config.dataset]
    curves_ui(running, runs, store)


def page(queue: JobQueue, store: RunStore) -> None:
    st.title("Class board")
    st.caption(
        "Every comparison on this server, anonymous and live: the queue, the verdicts, the curves and "
        "the transfer map the class builds together. [Back to the dashboard](?)"
    )
    st.fragment(run_every=REFRESH_SECONDS)(live_board)(queue, store)

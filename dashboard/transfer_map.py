"""The transfer map view (`?view=map`): pick a grid, press Run, and watch the map fill cell by cell.

Each unit of the grid (one arm at one setting, `transferlab.studies.grid`) is a "map unit" in the
job queue, and so is each size's cheap baseline (raw pixels, or TF-IDF for text): the worker
processes train them, the run store keeps them, units already in the store appear at once, and
sessions asking for the same unit share one run. The page only draws: the map of fine-tune minus
scratch (or either arm's accuracy) with the spread over seeds, the data-efficiency curve at one
depth with the baseline, and the curves of any finished cell.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from dashboard.charts import chart
from dashboard.controls import SIZES, STEPS, show_test_entries
from dashboard.uploads import dataset_label, own_datasets
from transferlab import ExperimentConfig, dataset_modality, get_spec, list_backbones, list_datasets, plots
from transferlab.serve import DEFAULT_STEPS, DONE, FAILED, MAP_UNIT, Grid, Job, JobQueue, QueueFull, map_table

MAX_UNITS = 120  # one session's map: on a 2-core CPU about as long as a lesson
REFRESH_SECONDS = 2.0
SHOW = {
    "gap": "fine-tune minus scratch",
    "finetune": "fine-tune accuracy",
    "scratch": "scratch accuracy",
    "probe": "probe accuracy",
}


def baselines(grid: Grid) -> dict[tuple, tuple[str, ExperimentConfig]]:
    """The cheap baseline's unit at each (size, seed): logistic regression on the raw pixels (or on
    TF-IDF word counts for text), the same run at every depth."""
    arm = "tfidf" if dataset_modality(grid.base.dataset) == "text" else "pixels"
    return {
        (n, s): (arm, replace(grid.base, per_class=n, seed=s, freeze_depth=0))
        for n in grid.per_class
        for s in grid.seed
    }


def grid_ui(sid: str) -> Grid:
    """The grid's controls (sidebar): backbone, dataset, depths, sizes, seeds and the budget."""
    st.header("The grid")
    backbone = st.selectbox("Pretrained backbone", list_backbones(include_test=show_test_entries()), key="map_backbone")
    datasets = list_datasets(include_test=show_test_entries()) + own_datasets(sid)
    datasets.remove("image_folder")
    default = datasets.index("fashion_mnist") if "fashion_mnist" in datasets else 0
    dataset = st.selectbox("Dataset", datasets, index=default, format_func=dataset_label, key="map_dataset")
    blocks = get_spec(backbone).num_blocks
    low, high = st.slider("Freeze depths k", 0, blocks, (0, blocks), key="map_depths")
    sizes = st.multiselect(
        "Images per class", [s for s in SIZES if s != "all"], default=[1, 5, 10, 50, 100], key="map_sizes"
    )
    seeds = st.number_input(
        "Seeds", 1, 5, 1, key="map_seeds", help="Each cell runs once per seed: the spread shows the noise."
    )
    steps = st.select_slider("Training steps (every run)", STEPS, value=DEFAULT_STEPS, key="map_steps")
    probe = st.checkbox(
        "With the linear probe", value=True, key="map_probe", help="All blocks frozen: one cheap run per size."
    )
    return Grid(
        base=ExperimentConfig(dataset=dataset, backbone=backbone, steps=steps),
        freeze_depth=range(low, high + 1),
        per_class=sorted(sizes),
        seed=range(int(seeds)),
        arms=("finetune", "scratch", "probe") if probe else ("finetune", "scratch"),
    )


def page(queue: JobQueue, sid: str) -> None:
    state = st.session_state
    st.title("Transfer map")
    st.caption(
        "How much does pretraining help, at each freeze depth and amount of data? Each cell is one "
        "comparison: fine-tuned with the first k blocks frozen, against the same network from scratch "
        "(which does not depend on k, so it runs once per size). [Back to the dashboard](?)"
    )
    with st.sidebar:
        grid = grid_ui(sid)
    units = grid.units()
    too_many = len(units) > MAX_UNITS
    note = f"{len(grid.cells())} cells, {len(units)} runs of {grid.base.steps} steps each."
    (st.error if too_many else st.caption)(
        note
        + (
            f" That is more than the {MAX_UNITS} one page may queue: choose fewer depths, sizes or seeds."
            if too_many
            else ""
        )
    )
    run, stop = st.columns(2)
    if run.button("Run", type="primary", disabled=too_many or not grid.per_class, key="map_run"):
        queue.cancel(sid, MAP_UNIT)  # a new grid replaces the old one: its units still waiting go
        try:
            jobs = {u.key: queue.submit(u.config, (u.arm,), sid, MAP_UNIT) for u in units}
            cheap = {
                cell: queue.submit(config, (arm,), sid, MAP_UNIT) for cell, (arm, config) in baselines(grid).items()
            }
            state.map = (grid, jobs, cheap)
        except QueueFull as error:
            queue.cancel(sid, MAP_UNIT)
            st.error(str(error))
    if "map" in state:
        if stop.button("Stop", key="map_stop"):
            queue.cancel(sid, MAP_UNIT)
        st.fragment(run_every=REFRESH_SECONDS)(map_ui)(queue, sid, *state.map)


def map_ui(queue: JobQueue, sid: str, grid: Grid, jobs: dict[str, Job], cheap: dict[tuple, Job]) -> None:
    """The map so far: progress, the heatmap, the data-efficiency curve, a cell's curves."""
    queue.touch(sid)  # the page is open: its units stay in the queue
    done = {key: job for key, job in jobs.items() if job.status == DONE and job.outcome is not None}
    failed = [job for job in jobs.values() if job.status == FAILED]
    finished = {k: (j.outcome, j.stored, bool(j.started and j.submitted > j.started)) for k, j in done.items()}
    table = map_table(grid, finished)
    from_store = sum(f for _, _, f in finished.values())
    st.progress(
        len(done) / len(jobs), text=f"{len(done)} of {len(jobs)} runs finished ({from_store} from the run store)"
    )
    for job in failed[:3]:
        st.error(f"A run failed: {job.error}")
    shown = ["gap", *grid.arms]
    show = st.segmented_control("Show", shown, format_func=SHOW.get, default="gap", key="map_show") or "gap"
    cells = table[table.arm == "finetune"] if show == "gap" else table[table.arm == show]
    fig = plots.transfer_map(
        cells, value="gap" if show == "gap" else "test_accuracy", title=f"Transfer map: {SHOW[show]}"
    )
    chart(fig, key="map-heatmap")
    efficiency_ui(grid, table, cheap)
    cell_curves_ui(grid, table, done)


def efficiency_ui(grid: Grid, table: pd.DataFrame, cheap: dict[tuple, Job]) -> None:
    """Accuracy against images per class (log axis) at one depth, with the cheap baseline."""
    depth = st.select_slider("Data-efficiency curve at freeze depth k", list(grid.freeze_depth), key="map_curve_k")
    rows = table[(table.freeze_depth == depth) & table.test_accuracy.notna()]
    if rows.empty:
        return
    baseline = [
        {"per_class": n, "seed": s, "arm": job.arms[0], "test_accuracy": job.outcome.accuracy(job.arms[0])}
        for (n, s), job in cheap.items()
        if job.status == DONE and job.outcome is not None
    ]
    curve = pd.concat([rows, pd.DataFrame(baseline)], ignore_index=True)
    fig = plots.accuracy_against(
        curve, x="per_class", log_x=True, title=f"Accuracy against images per class, k = {depth}"
    )
    chart(fig, key="map-efficiency")


def cell_curves_ui(grid: Grid, table: pd.DataFrame, done: dict[str, Job]) -> None:
    """The learning curves of one finished cell: its fine-tune and scratch runs."""
    complete = table.dropna(subset=["test_accuracy"]).groupby(["freeze_depth", "per_class", "seed"]).size()
    complete = [c for c, n in complete.items() if n == len(grid.arms)]
    if not complete:
        return
    k, n, seed = st.selectbox(
        "Curves of a cell", complete, format_func=lambda c: f"k = {c[0]}, {c[1]} per class, seed {c[2]}", key="map_cell"
    )
    cell = next(c for c in grid.cells() if (c.freeze_depth, c.per_class, c.seed) == (k, n, seed))
    history = pd.concat([done[grid.unit(cell, arm).key].outcome.history for arm in grid.arms], ignore_index=True)
    chart(plots.learning_curves(history), key="map-cell-curves")

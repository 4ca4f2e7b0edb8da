"""The transfer map: a sweep's cells are the single runs of the same settings, a killed sweep resumes
from the run store, and the same grid gives the same table in a pool of processes and on Ray."""

from __future__ import annotations

import os
from dataclasses import replace

import pandas as pd
import pytest
import torch

from transferlab import compare
from transferlab.studies.grid import Grid, run_sweep
from transferlab.training.store import RunStore

COLUMNS = ["per_class", "seed", "freeze_depth", "arm"]
MEASURED = ["test_accuracy", "val_accuracy", "test_loss", "gap", "gap_low", "gap_high"]


@pytest.fixture
def grid(tiny):
    # 12 steps at a high rate, so that the cells differ: finetune at k = 0 reaches 100%, scratch at
    # n = 2 about 46%, the deeper frozen arms stay at chance, and every unit has its own test loss.
    # (At 6 steps every unit was at chance, 25%: tables that mixed units up would have looked equal.)
    return Grid(base=replace(tiny, epochs=None, steps=12, lr=3e-2), freeze_depth=(0, 1, 2), per_class=(2, 6), seed=(0,))


def measured(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index(COLUMNS)[MEASURED].sort_index()


def in_process(grid: Grid, path, threads: int) -> pd.DataFrame:
    """The sweep in this process, torch on `threads` threads: as many as a backend's workers get, so
    that float sums run in the same order and the same units give the same numbers to the last bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run_sweep(grid, RunStore(path), progress=False)
    finally:
        torch.set_num_threads(before)


def test_every_cell_and_arm_once_scratch_shared_across_depths(grid, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    table = run_sweep(grid, store, progress=False)
    assert len(table) == 3 * 2 * 2 and set(table.arm) == {"finetune", "scratch"}
    assert len(store) == 3 * 2 + 2, "scratch ignores the depth: one run per size, not per cell"
    scratch = table[table.arm == "scratch"].groupby("per_class").test_loss
    assert (scratch.nunique() == 1).all() and scratch.first().nunique() == 2, "one scratch run per size"
    finetune = table[table.arm == "finetune"].set_index(["per_class", "freeze_depth"])
    assert finetune.test_loss.nunique() == 6, "each cell's finetune unit is its own run"
    # A cell is a single run: finetune at k = 0 and n = 2 (100%) against scratch at n = 2 (about 46%).
    single = compare(replace(grid.base, per_class=2, freeze_depth=0), ["finetune", "scratch"])
    cell = finetune.loc[(2, 0)]
    assert (cell.test_accuracy, cell.test_loss) == (single.accuracy("finetune"), single.table.test_loss[0])
    scratch_at_2 = table[(table.arm == "scratch") & (table.per_class == 2)].test_accuracy.iloc[0]
    assert scratch_at_2 == single.accuracy("scratch") and cell.test_accuracy - scratch_at_2 > 0.3
    # Its gap is the accuracies' difference, with the single comparison's interval, paired over the
    # same test images, at the level Holm's rule gives it among the map's cells (wider than 95%).
    assert cell.gap == pytest.approx(cell.test_accuracy - scratch_at_2)
    d = single.difference("finetune", "scratch")
    adjusted = d.at(cell.gap_confidence)
    assert cell.gap_confidence > 0.95 and adjusted.high - adjusted.low > d.high - d.low
    assert [cell.gap_low, cell.gap_high] == pytest.approx([adjusted.low, adjusted.high]) and adjusted.low > 0
    stored = store.comparisons()
    assert stored.gap_low.isna().all(), "a unit of one arm has no gap of its own"
    assert (stored.dataset_version == "1").all()


def test_a_killed_sweep_resumes_where_it_stopped(grid, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    trained = []

    def killed_after_three(unit, outcome, from_store):
        trained.append(unit)
        if len(trained) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, store, progress=False, on_unit=killed_after_three)
    assert len(store) == 3, "each finished unit is in the store at once"
    resumed = run_sweep(grid, store, progress=False)
    assert len(store) == 8 and resumed.from_store.sum() > 0 and not resumed.from_store.all()
    again = run_sweep(grid, store, progress=False)
    assert again.from_store.all(), "a finished sweep trains nothing more"
    fresh = run_sweep(grid, RunStore(tmp_path / "fresh.sqlite"), progress=False)
    pd.testing.assert_frame_equal(measured(resumed), measured(fresh), check_exact=True)


def test_a_pool_of_processes_gives_the_same_table(grid, tmp_path):
    pooled = run_sweep(grid, RunStore(tmp_path / "b.sqlite"), backend="processes", workers=1, progress=False)
    # A pool of one process gives it every core (`cores // workers` threads); here the same.
    inprocess = in_process(grid, tmp_path / "a.sqlite", threads=os.cpu_count() or 1)
    pd.testing.assert_frame_equal(measured(pooled), measured(inprocess), check_exact=True)


def test_a_small_sweep_on_a_local_ray_instance(grid, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        table = run_sweep(grid, RunStore(tmp_path / "ray.sqlite"), backend="ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    assert not table.from_store.any()
    # Ray runs a one-CPU task with torch on one thread (it sets OMP_NUM_THREADS=1); this process uses
    # two. Two threads sum floats in another order (test losses then differ by about 1e-5, the
    # accuracies not at all), so the reference runs on one thread too: then every number is equal.
    inprocess = in_process(grid, tmp_path / "a.sqlite", threads=1)
    pd.testing.assert_frame_equal(measured(table), measured(inprocess), check_exact=True)

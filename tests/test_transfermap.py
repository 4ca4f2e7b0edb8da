"""The transfer map: a sweep's cells are the single runs of the same settings, a killed sweep resumes
from the run store, and the same grid gives the same table in a pool of processes and on Ray."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from transferlab import compare
from transferlab.studies.grid import Grid, run_sweep
from transferlab.training.store import RunStore

COLUMNS = ["per_class", "seed", "freeze_depth", "arm"]


@pytest.fixture
def grid(tiny):
    return Grid(base=replace(tiny, epochs=None, steps=6), freeze_depth=(0, 1, 2), per_class=(2, 6), seed=(0,))


def accuracies(table: pd.DataFrame) -> pd.Series:
    return table.set_index(COLUMNS).test_accuracy.sort_index()


def test_every_cell_and_arm_once_scratch_shared_across_depths(grid, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    table = run_sweep(grid, store, progress=False)
    assert len(table) == 3 * 2 * 2 and set(table.arm) == {"finetune", "scratch"}
    assert len(store) == 3 * 2 + 2, "scratch ignores the depth: one run per size, not per cell"
    scratch = table[table.arm == "scratch"].groupby("per_class").test_accuracy.nunique()
    assert (scratch == 1).all()
    finetune = table[table.arm == "finetune"].set_index(["per_class", "freeze_depth"])
    scratch_at_6 = table[(table.arm == "scratch") & (table.per_class == 6)].test_accuracy.iloc[0]
    assert finetune.loc[(6, 2), "gap"] == pytest.approx(finetune.loc[(6, 2), "test_accuracy"] - scratch_at_6)
    cell = replace(grid.base, per_class=6, freeze_depth=2)
    single = compare(cell, ["finetune", "scratch"])
    assert finetune.loc[(6, 2), "test_accuracy"] == pytest.approx(single.accuracy("finetune")), "a cell is a single run"
    # Its gap's 95% interval is the single comparison's, paired over the same test images.
    d = single.difference("finetune", "scratch")
    assert finetune.loc[(6, 2), ["gap", "gap_low", "gap_high"]].tolist() == pytest.approx([d.estimate, d.low, d.high])
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
    pd.testing.assert_series_equal(accuracies(resumed), accuracies(fresh))


def test_a_pool_of_processes_gives_the_same_table(grid, tmp_path):
    inprocess = run_sweep(grid, RunStore(tmp_path / "a.sqlite"), progress=False)
    pooled = run_sweep(grid, RunStore(tmp_path / "b.sqlite"), backend="processes", workers=1, progress=False)
    pd.testing.assert_series_equal(accuracies(inprocess), accuracies(pooled))


def test_a_small_sweep_on_a_local_ray_instance(grid, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        table = run_sweep(grid, RunStore(tmp_path / "ray.sqlite"), backend="ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    inprocess = run_sweep(grid, RunStore(tmp_path / "a.sqlite"), progress=False)
    assert len(table) == len(inprocess) and not table.from_store.any()
    # Ray runs each task on one thread (this process uses two): float sums in another order, the
    # same model to within a test image or two.
    assert (accuracies(table) - accuracies(inprocess)).abs().max() <= 0.1

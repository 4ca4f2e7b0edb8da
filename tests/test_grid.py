"""The one grid engine: every cell of a sweep is the single comparison of its settings."""

from dataclasses import replace

import numpy as np
import pytest

from transferlab import ConfigError, ExperimentConfig, Grid, compare, run_sweep, sweep
from transferlab.studies.grid import MemoryStore


def assert_cells_are_single_comparisons(table, base: ExperimentConfig, arms: list[str]) -> None:
    for (n, k, seed), cell in table.groupby(["per_class", "freeze_depth", "seed"]):
        direct = compare(replace(base, per_class=n, freeze_depth=k, seed=seed), arms)
        mine = cell.set_index("arm")
        for arm in arms:
            assert mine.loc[arm, "test_accuracy"] == direct.accuracy(arm), (arm, n, k, seed)
            assert mine.loc[arm, "val_accuracy"] == direct.runs[arm].val_accuracy, (arm, n, k, seed)
        right = {a: direct.runs[a].test_predictions.numpy() == direct.data.test_labels.numpy() for a in arms}
        gap = direct.difference("finetune", "scratch").at(mine.gap_confidence.iloc[0])  # Holm's level in the map
        assert mine.gap.iloc[0] == pytest.approx(gap.estimate) and mine.gap_low.iloc[0] == pytest.approx(gap.low)
        assert np.mean(right["finetune"]) - np.mean(right["scratch"]) == pytest.approx(gap.estimate)


def test_an_image_cell_equals_the_comparison_of_its_settings(tiny):
    arms = ["finetune", "scratch", "pixels"]
    table = sweep(tiny, arms, seeds=(1,), per_class=[4, 8], freeze_depth=[0, 2])
    assert len(table) == 2 * 2 * len(arms)
    assert_cells_are_single_comparisons(table, tiny, arms)
    # An arm that ignores k is one run per size and seed: its row is the same at every depth.
    scratch = table[table.arm == "scratch"].pivot_table(index=["per_class", "seed"], columns="freeze_depth",
                                                         values="test_accuracy")  # fmt: skip
    assert (scratch[0] == scratch[2]).all()


def test_a_text_cell_equals_the_comparison_of_its_settings():
    text = ExperimentConfig(dataset="wordnet", backbone="test_tiny_text", per_class=5, steps=6, batch_size=16,
                            lr=3e-3, val_per_class=5, test_per_class=10, precision="fp32")  # fmt: skip
    arms = ["finetune", "scratch", "tfidf"]
    table = sweep(text, arms, per_class=[5], freeze_depth=[1, 3])
    assert_cells_are_single_comparisons(table, text, arms)


def test_a_grid_resumes_from_its_store_and_takes_any_field(tiny):
    store = MemoryStore()
    grid = Grid.of(tiny, ["finetune", "scratch"], (0,), per_class=[4], label_noise=[0.0, 0.5])
    first = run_sweep(grid, store, progress=False)
    assert set(first.label_noise) == {0.0, 0.5} and not first.from_store.any()
    again = run_sweep(grid, store, progress=False)
    assert again.from_store.all() and (again.test_accuracy == first.test_accuracy).all()
    noisy = compare(replace(tiny, per_class=4, label_noise=0.5), ["finetune"])
    assert first[(first.label_noise == 0.5) & (first.arm == "finetune")].test_accuracy.item() == noisy.accuracy(
        "finetune"
    )
    with pytest.raises(ConfigError, match="other than seed"):
        Grid.of(tiny, ["finetune"], (0,), colour=["red"])
    with pytest.raises(ConfigError, match="callbacks run in this process"):
        run_sweep(grid, backend="processes", callbacks=[object()])

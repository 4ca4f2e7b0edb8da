"""The benchmark's two loops must compute the same experiment; speed itself is measured by `make bench`."""

from transferlab import ExperimentConfig
from transferlab.bench import run_reference, run_transferlab


def test_reference_and_transferlab_loops_train_the_same_experiment():
    config = ExperimentConfig(
        dataset="test_blobs",
        backbone="test_tiny",
        per_class=16,
        freeze_depth=1,
        epochs=12,
        batch_size=8,
        lr=1e-2,
        test_per_class=None,
        eval_per_class=5,
    )
    ref, ours = run_reference(config), run_transferlab(config)
    assert ref["train_images"] == ours["train_images"] == 12 * 64
    assert ref["test_accuracy"] > 0.6 and ours["test_accuracy"] > 0.6  # both learn the task (chance: 0.25)
    assert abs(ref["test_accuracy"] - ours["test_accuracy"]) < 0.2

import statistics
from dataclasses import replace

import numpy as np
import pytest

from transferlab import ConfigError, ExperimentConfig, plots
from transferlab.studies import choosing
from transferlab.studies.choosing import compare_backbones, equivalent_depth


@pytest.fixture
def resnet_missing(monkeypatch):
    """resnet18's weights are not on this machine, whether or not they are cached here."""
    real = choosing.backbone_status
    monkeypatch.setattr(
        choosing, "backbone_status", lambda n: (False, "copy resnet18 weights") if n == "resnet18" else real(n)
    )


@pytest.fixture(scope="module")
def choice(tiny):
    # test_tiny has 3 blocks and labnet 4: k = 2 of 3 becomes k = 3 of 4 on labnet.
    return compare_backbones(replace(tiny, freeze_depth=2), ("test_tiny", "labnet"), ("finetune", "probe"), (0, 1))


def test_equivalent_depth_keeps_the_share_of_blocks_frozen():
    lite = ExperimentConfig(backbone="efficientnet_lite0", freeze_depth=4)
    assert equivalent_depth(lite, "efficientnet_lite2") == 4  # the same 9 blocks
    assert equivalent_depth(lite, "resnet18") == 2  # 4 of 9 is 2.2 of 5
    assert equivalent_depth(replace(lite, freeze_depth=0), "resnet18") == 0
    assert equivalent_depth(replace(lite, freeze_depth=9), "resnet18") == 5  # a probe stays a probe


def test_a_row_per_backbone_and_arm_with_the_seed_spread(choice):
    t = choice.table
    assert list(zip(t.backbone, t.arm)) == [
        ("test_tiny", "finetune"),
        ("test_tiny", "probe"),
        ("labnet", "finetune"),
        ("labnet", "probe"),
    ]
    expected = {"parameters", "freeze_depth", "image_size", "seeds", "seconds", "test_accuracy"}
    assert expected | {"test_accuracy_spread", "train_images_per_s", "predict_images_per_s", "multiply_adds"} <= set(
        t.columns
    )
    assert (t.seeds == 2).all()
    assert t.set_index(["backbone", "arm"]).freeze_depth.to_dict() == {
        ("test_tiny", "finetune"): 2,
        ("test_tiny", "probe"): 3,
        ("labnet", "finetune"): 3,
        ("labnet", "probe"): 4,
    }
    assert (t.predict_images_per_s > 0).all() and (t.train_images_per_s > 0).all()
    runs = choice.runs
    assert len(runs) == 2 * 2 * 2
    # Each row's accuracy and spread are the mean and the standard deviation of its seeds' runs.
    for row in t.itertuples():
        seeds = runs[(runs.backbone == row.backbone) & (runs.arm == row.arm)].test_accuracy.tolist()
        assert len(seeds) == 2 and row.test_accuracy == pytest.approx(statistics.mean(seeds))
        assert row.test_accuracy_spread == pytest.approx(statistics.stdev(seeds))
    assert t.test_accuracy_spread.max() > 0, "the seeds differ somewhere, or the spread checks nothing"
    assert {"backbone", "seed"} <= set(choice.history.columns) and set(choice.history.seed) == {0, 1}
    assert choice.skipped == {}


def test_backbones_without_weights_are_skipped_with_the_reason(tiny, resnet_missing):
    choice = compare_backbones(tiny, ("test_tiny", "resnet18"))
    assert list(choice.table.backbone) == ["test_tiny"]
    assert choice.skipped == {"resnet18": "copy resnet18 weights"}
    assert np.isnan(choice.table.test_accuracy_spread.iloc[0])  # one seed: no spread
    with pytest.raises(ConfigError, match="none of the backbones is available here: resnet18: copy resnet18 weights"):
        compare_backbones(tiny, ("resnet18",))


def test_backbone_choice_draws_a_point_per_row_with_its_spread(choice):
    fig = plots.backbone_choice(choice.table, x="predict_images_per_s")
    assert [t.name for t in fig.data] == ["test_tiny finetune", "test_tiny probe", "labnet finetune", "labnet probe"]
    assert fig.data[0].x[0] == choice.table.predict_images_per_s.iloc[0]
    assert fig.data[0].error_y.visible and fig.data[0].error_y.array[0] == choice.table.test_accuracy_spread.iloc[0]
    assert fig.layout.xaxis.title.text == "predictions per second (whole network)"
    one_arm = plots.backbone_choice(choice.table[choice.table.arm == "finetune"])
    assert [t.name for t in one_arm.data] == ["test_tiny", "labnet"]


def test_a_predictions_cost_is_counted_in_multiply_adds_whatever_the_machine():
    lite0, lite2 = (choosing.multiply_adds(b, 224) for b in ("efficientnet_lite0", "efficientnet_lite2"))
    assert 350e6 < lite0 < 420e6  # EfficientNet-Lite0 at 224 px: about 0.4 billion
    assert lite2 > 1.4 * lite0  # deeper, wider: the larger network costs more per image, on any machine
    assert 3.5 < lite0 / choosing.multiply_adds("efficientnet_lite0", 112) < 4.1  # a quarter of the pixels


def test_prediction_speeds_are_timed_side_by_side():
    speeds = choosing.prediction_speeds({"test_tiny": 16, "labnet": 32}, batch=8, rounds=2)
    assert set(speeds) == {"test_tiny", "labnet"} and all(s > 0 for s in speeds.values())

"""The claim the kit is built on, checked for real: ImageNet EfficientNet-Lite0 fine-tuned on
10 Fashion-MNIST images per class beats the same network trained from scratch by a wide margin."""

import pytest

from transferlab import ExperimentConfig, compare


@pytest.mark.slow
def test_finetuning_beats_scratch_on_fashion_mnist_at_10_per_class():
    config = ExperimentConfig(
        dataset="fashion_mnist", backbone="efficientnet_lite0", per_class=10, freeze_depth=4, seed=0
    )
    result = compare(config)
    assert result.accuracy("finetune") > 0.6
    assert result.gap >= 0.15, result.table
    assert result.table.cached_features.tolist() == [True, False]

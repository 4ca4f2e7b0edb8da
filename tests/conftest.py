"""Shared fixtures: tiny configurations that exercise the real code paths in seconds."""

import pytest
import torch

from transferlab import ExperimentConfig

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny() -> ExperimentConfig:
    """The tiny test backbone on the synthetic dataset: whole runs in well under a second."""
    return ExperimentConfig(
        dataset="test_blobs",
        backbone="test_tiny",
        per_class=8,
        freeze_depth=1,
        epochs=3,
        batch_size=8,
        lr=3e-3,
        test_per_class=None,
        val_per_class=5,
    )

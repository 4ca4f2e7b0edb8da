"""Make labnet's pretrained weights: train it from scratch on Fashion-MNIST classes 0-4.

    .venv/bin/python scripts/pretrain_labnet.py        # about a minute on 2 CPU cores

Writes transferlab/models/weights/labnet_fashion_mnist_0-4.pt (the blocks only; every target task gets a new head).
The source task is half of Fashion-MNIST so that lessons can transfer to the other half
(classes 5-9), a task the network has never seen, and compare with self-transfer.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transferlab import ExperimentConfig, Printer, pretrain  # noqa: E402
from transferlab._paths import shipped_dir  # noqa: E402
from transferlab.models.labnet import LABNET_WEIGHTS  # noqa: E402

SOURCE = ExperimentConfig(
    dataset="fashion_mnist",
    classes=(0, 1, 2, 3, 4),
    backbone="labnet",
    per_class=None,
    epochs=3,
    batch_size=128,
    lr=2e-3,
    test_per_class=None,
    val_per_class=200,
    seed=0,
)

if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    state, result = pretrain(SOURCE, callbacks=[Printer()])
    path = shipped_dir() / LABNET_WEIGHTS
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never leave a half-written file behind
    print(f"wrote {path} (source test accuracy {result.table.test_accuracy[0]:.1%})")

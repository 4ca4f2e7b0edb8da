"""Cheap ways to look at transfer without training a network: features, baselines, maps.

Each function is small enough to read beside the lesson that calls it:

- `extract_features`: pooled penultimate features (what a linear probe sees) for images;
  `dataset_features` does it for an experiment's training and test images.
- `nearest_centroid` / `centroid_baseline`: classify by the nearest class mean of features
  (few-shot learning with no training at all).
- `pca_2d`: a 2-D map of features for `plots.embedding_scatter`.
- `transplant`: the first k blocks from one set of weights, the rest from random init
  (the arms of Yosinski et al. 2014).
- `accuracy_on`: a trained network's accuracy on any images (a source task, a shifted domain).
- `adapt_batchnorm`: AdaBN, BatchNorm statistics re-estimated on unlabelled target images.
- `layer_transfer`: Yosinski et al.'s experiment, comparisons of transplanted blocks.

The raw-pixel baseline is an arm of every comparison: `compare(config, ["pixels"])`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from ..data.transforms import model_input, to_model_input
from ..device import pick_device
from ..models.registry import BlockNet, create_backbone, get_spec
from ..training.arm_run import answers
from ..training.comparison import compare
from ..training.config import Arm, ExperimentConfig
from ..training.splits import prepare_data

__all__ = [
    "DatasetFeatures",
    "accuracy_on",
    "adapt_batchnorm",
    "centroid_baseline",
    "dataset_features",
    "extract_features",
    "layer_transfer",
    "nearest_centroid",
    "pca_2d",
    "transplant",
]


@torch.no_grad()
def extract_features(
    backbone: str,
    images: torch.Tensor,
    init: str | Mapping = "pretrained",
    size: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Pooled penultimate features (N, F) of uint8 images (N, C, H, W), on the CPU.

    Args:
        backbone: a registered backbone name.
        init: "pretrained", "random" (initialised from `seed`) or a state dict of its blocks.
        size: input size in pixels (default: the backbone's training size).
    """
    spec = get_spec(backbone)
    size = size or spec.train_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(init, Mapping):
            model = create_backbone(backbone, num_classes=1, pretrained=False)
            model.blocks.load_state_dict(init, strict=True)
        else:
            model = create_backbone(backbone, num_classes=1, pretrained=init == "pretrained")
    model.eval().to(images.device)
    out = [
        model.features(model_input(images[i : i + batch_size], spec, size)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


@dataclass(frozen=True)
class DatasetFeatures:
    """Features of an experiment's training and test images, with their labels (CPU tensors)."""

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    seconds: float


def dataset_features(config: ExperimentConfig, init: str | Mapping = "pretrained") -> DatasetFeatures:
    """Features of the images `compare(config)` would train and test on (same subset, same size)."""
    started = time.perf_counter()
    data = prepare_data(config, pick_device(config.device))

    def feats(images: torch.Tensor) -> torch.Tensor:
        return extract_features(config.backbone, images, init, config.size, config.seed)

    train, test = feats(data.train_images), feats(data.test_images)
    return DatasetFeatures(
        train,
        data.train_labels.cpu(),
        test,
        data.test_labels.cpu(),
        data.dataset.classes,
        time.perf_counter() - started,
    )


def nearest_centroid(train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Predict each test row's class as the nearest class mean, by cosine similarity.

    Features are L2-normalised first, so the answer depends on direction, not on magnitude.
    """
    train = torch.nn.functional.normalize(train.float(), dim=1)
    test = torch.nn.functional.normalize(test.float(), dim=1)
    classes = int(labels.max()) + 1
    centroids = torch.zeros(classes, train.shape[1]).index_add_(0, labels, train)
    centroids = torch.nn.functional.normalize(centroids, dim=1)  # (classes, F)
    return (test @ centroids.T).argmax(1)


def centroid_baseline(config: ExperimentConfig, init: str | Mapping = "pretrained") -> dict:
    """Nearest class centroid on the backbone's features: no training, one forward pass.

    Returns:
        A result-table row: arm "centroid", per_class, seed, test_accuracy, test_correct (each
        test image's answer, as in `compare`'s rows), seconds.
    """
    f = dataset_features(config, init)
    started = time.perf_counter()
    predictions = nearest_centroid(f.train, f.train_labels, f.test)
    return {
        "arm": "centroid",
        "dataset": config.dataset,
        "per_class": config.per_class,
        "seed": config.seed,
        "test_accuracy": float((predictions == f.test_labels).float().mean()),
        "test_correct": answers(predictions, f.test_labels),
        "seconds": round(f.seconds + time.perf_counter() - started, 2),
    }


def pca_2d(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components: (N, F) -> (N, 2)."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)  # rows of vt: directions of most variance
    points = x @ vt[:2].T
    # The sign of a principal component is arbitrary; fix it so the map is the same every run.
    signs = np.sign(points[np.abs(points).argmax(0), [0, 1]])
    return points * np.where(signs == 0, 1, signs)


def transplant(source: Mapping, k: int, backbone: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Blocks 1..k from `source` (a blocks state dict), blocks k+1..n freshly initialised from `seed`.

    With `Arm(init=transplant(weights_a, k, ...), freeze=k)` this is Yosinski's AnB at depth k;
    with `freeze="none"` it is AnB+.
    """
    spec = get_spec(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = create_backbone(backbone, num_classes=1, pretrained=False).blocks.state_dict()
    keep = tuple(f"{name}." for name in spec.blocks[:k])
    return {key: (source[key] if key.startswith(keep) else value).clone() for key, value in fresh.items()}


@torch.no_grad()
def accuracy_on(model: BlockNet, images: torch.Tensor, labels: torch.Tensor, size: int, batch_size: int = 256) -> float:
    """The accuracy of `model` (blocks and head, in eval mode) on uint8 `images`; its mode is kept."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    spec = model.spec
    correct = 0
    for i in range(0, len(images), batch_size):
        x = model_input(images[i : i + batch_size].to(device), spec, size)
        correct += int((model(x).argmax(1).cpu() == labels[i : i + batch_size].cpu()).sum())
    model.train(was_training)
    return correct / len(labels)


@torch.no_grad()
def adapt_batchnorm(model: BlockNet, images: torch.Tensor, size: int, batch_size: int = 256) -> BlockNet:
    """AdaBN (Li et al. 2016): replace every BatchNorm layer's running mean and variance by those of
    unlabelled target `images`; no weight changes, no labels. Returns a changed copy of `model`."""
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over every batch, not a moving one
    adapted.eval()
    for bn in norms:
        bn.train()  # only BatchNorm: it measures the statistics of what it sees
    device = next(adapted.parameters()).device
    spec = adapted.spec
    for i in range(0, len(images), batch_size):
        adapted.forward_blocks(to_model_input(images[i : i + batch_size].to(device), size, spec.mean, spec.std))
    return adapted.eval()


def layer_transfer(
    config: ExperimentConfig,
    sources: dict[str, dict],
    depths: Sequence[int],
    seeds: Sequence[int] = (0,),
    fine_tune: Sequence[str] = (),
) -> pd.DataFrame:
    """Yosinski et al. (2014) at small scale: copy the first k blocks of each source, retrain the rest.

    For every depth k, seed and source `X` (a blocks state dict, e.g. "A": weights pretrained on
    task A), the arm `XnB` starts from `transplant(X, k)` with blocks 1..k frozen and blocks
    k+1..n re-initialised; for sources named in `fine_tune`, `XnB+` trains everything from the
    same start. A `scratch` run per seed is the baseline (k = 0).

    Returns:
        One row per run: `arm` (e.g. "AnB+"), `freeze_depth` (k), `seed`, `test_accuracy`, ...
    """

    rows = []
    for seed in seeds:
        cfg = replace(config, seed=seed)
        rows += [{**r, "arm": "scratch"} for r in compare(cfg, ["scratch"]).table.to_dict("records")]
        for k in depths:
            arms = []
            for name, state in sources.items():
                start = transplant(state, k, config.backbone, seed)
                arms.append(Arm(f"{name}nB", init=start, freeze=k))
                if name in fine_tune:
                    arms.append(Arm(f"{name}nB+", init=start, freeze="none"))
            table = compare(replace(cfg, freeze_depth=k), arms).table
            rows += [{**r, "freeze_depth": k} for r in table.to_dict("records")]
    return pd.DataFrame(rows)

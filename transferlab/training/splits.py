"""The images one experiment uses: a training subset, a validation split and a test split.

    pool (the dataset's training images) = validation split + the rest
                                           the rest -> n images per class, drawn with the seed
    the dataset's test images            -> the test split (fixed)

The validation split never depends on the seed or on n, and never overlaps the training images,
so curves and choices (the best freeze depth, when to stop) are made on it; the test split is
measured once, at the end of a run. Everything is a uint8 tensor on the device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ..data.registry import ImageDataset, load_dataset, select_classes, stratified_indices
from ..errors import ConfigError
from .config import ExperimentConfig

__all__ = ["ExperimentData", "prepare_data", "val_count"]


@dataclass(frozen=True, eq=False)
class ExperimentData:
    """The three splits of one experiment. `rows` are each split's indices into the dataset's
    train (for "train" and "val") or test images; `keys` name each split's images (dataset, its
    version and rows) for the feature cache: equal keys, equal images."""

    dataset: ImageDataset
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    rows: dict[str, torch.Tensor]
    keys: dict[str, str]


def val_count(class_size: int, val_per_class: int) -> int:
    """Validation images taken from a class of `class_size` training images: at most a fifth."""
    return min(val_per_class, class_size // 5)


def prepare_data(config: ExperimentConfig, device: torch.device | str = "cpu") -> ExperimentData:
    """Load the dataset, draw the three splits, move them to `device`."""
    ds = load_dataset(config.dataset, root=config.root)
    if config.classes is not None:
        ds = select_classes(ds, config.classes)
    counts = torch.bincount(ds.train_labels, minlength=ds.num_classes)
    if len(counts) < 2 or int(counts.min()) == 0:
        raise ConfigError(f"{ds.name} needs training images in at least 2 classes; it has {counts.tolist()}")
    val = _stratified_each(ds.train_labels, [val_count(int(c), config.val_per_class) for c in counts])
    rest = torch.ones(len(ds.train_labels), dtype=torch.bool)
    rest[val] = False
    rest = torch.nonzero(rest).flatten()
    try:
        train = rest[stratified_indices(ds.train_labels[rest], config.per_class, config.seed)]
    except ConfigError as error:
        raise ConfigError(f"{error} (after {config.val_per_class} per class are held out for validation)") from None
    test = stratified_indices(ds.test_labels, _cap(ds.test_labels, config.test_per_class), seed=0)

    train_labels = ds.train_labels[train]
    if config.label_noise:  # only the training images: validation and test keep their true labels
        g = torch.Generator().manual_seed(config.seed + 7)
        noisy = torch.rand(len(train), generator=g) < config.label_noise
        train_labels = torch.where(noisy, torch.randint(ds.num_classes, (len(train),), generator=g), train_labels)

    def key(split: str, rows: torch.Tensor) -> str:
        return f"{ds.name}:{ds.version}:{config.root}:{split}:{hashlib.sha1(rows.numpy().tobytes()).hexdigest()[:12]}"

    return ExperimentData(
        dataset=ds,
        train_images=ds.train_images[train].to(device),
        train_labels=train_labels.to(device),
        val_images=ds.train_images[val].to(device),
        val_labels=ds.train_labels[val].to(device),
        test_images=ds.test_images[test].to(device),
        test_labels=ds.test_labels[test].to(device),
        rows={"train": train, "val": val, "test": test},
        keys={"train": key("train", train), "val": key("val", val), "test": key("test", test)},
    )


def _stratified_each(labels: torch.Tensor, per_class: list[int]) -> torch.Tensor:
    """`per_class[c]` images of each class c, drawn with a fixed seed (the validation split)."""
    chosen = []
    for c, k in enumerate(per_class):
        members = torch.nonzero(labels == c).flatten()
        order = torch.randperm(len(members), generator=torch.Generator().manual_seed(7919 + c))
        chosen.append(members[order[:k]])
    return torch.sort(torch.cat(chosen)).values


def _cap(labels: torch.Tensor, per_class: int | None) -> int | None:
    """per_class, or None (all) when a class has fewer images than that."""
    if per_class is None:
        return None
    return per_class if int(torch.bincount(labels).min()) >= per_class else None

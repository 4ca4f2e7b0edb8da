"""The dataset registry: real images (or texts) held in memory as uint8 tensors, with fixed test splits.

A dataset is loaded once into an `ImageDataset` (train and test images as (N, C, H, W) uint8
tensors, C = 1 or 3). Experiments then draw a stratified, reproducible subset of n images per
class for training; the test split stays fixed. Converting to the model's input (grayscale to
RGB, resize, normalise) happens in batches on tensors, never per PIL image.

    >>> ds = load_dataset("fashion_mnist")            # Debian's files, the cache, or a download
    >>> idx = stratified_indices(ds.train_labels, per_class=10, seed=0)

The sets register themselves from their own modules (`builtin`, `wordnet`, `folders`, and
`imports` for the sets a person imported); this module imports none of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch

from ..errors import ConfigError

__all__ = [
    "DatasetFacts",
    "ImageDataset",
    "dataset_facts",
    "dataset_status",
    "dataset_version",
    "describe_dataset",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "register_source",
    "select_classes",
    "split_fixed",
    "stratified_indices",
]

BUILTIN_VERSION = "1"  # a built-in set's content never changes under its name


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A whole dataset in memory: images are (N, C, H, W) uint8, labels (N,) int64.

    A text dataset has the same shape of record: its "images" are token ids (N, L) int64 (the
    model's input, `textnet.tokenize`), and `train_texts` / `test_texts` keep the texts
    themselves, for text baselines and for showing mistakes.
    """

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str
    skipped: tuple[str, ...] = ()  # files that could not be read, each with why
    train_texts: tuple[str, ...] = ()
    test_texts: tuple[str, ...] = ()
    version: str = ""  # what `dataset_version` said when it was loaded: results and caches are keyed by it

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def modality(self) -> str:
        return "text" if self.train_texts else "image"

    def __repr__(self) -> str:
        shape = self.train_images.shape[1:]  # (C, H, W), or (tokens,) for text
        inputs = f"text of {shape[0]} tokens" if self.modality == "text" else "x".join(map(str, shape))
        return (
            f"ImageDataset({self.name!r}, {self.num_classes} classes, train {len(self.train_labels)}, "
            f"test {len(self.test_labels)}, {inputs}, from {self.source})"
        )


@dataclass(frozen=True)
class DatasetFacts:
    """What a menu or a check needs to know about a dataset, without holding its images: the
    classes, the images per class in each split, and the files that could not be read."""

    classes: tuple[str, ...]
    train_counts: tuple[int, ...]
    test_counts: tuple[int, ...]
    skipped: tuple[str, ...] = ()

    @classmethod
    def of(cls, ds: ImageDataset) -> DatasetFacts:
        def counts(labels: torch.Tensor) -> tuple[int, ...]:
            return tuple(torch.bincount(labels, minlength=ds.num_classes).tolist())

        return cls(ds.classes, counts(ds.train_labels), counts(ds.test_labels), ds.skipped)

    @property
    def train(self) -> int:
        return sum(self.train_counts)

    @property
    def test(self) -> int:
        return sum(self.test_counts)

    @property
    def smallest_class(self) -> int:
        """Training images of the smallest class (what bounds images per class)."""
        return min(self.train_counts)

    @property
    def smallest_test_class(self) -> int:
        return min(self.test_counts)


# --- sampling ---------------------------------------------------------------------------------


def stratified_indices(labels: torch.Tensor, per_class: int | None, seed: int) -> torch.Tensor:
    """Indices of `per_class` images of every class (all when None), the same for the same seed.

    Each class is shuffled with its own generator seeded from (seed, class), so the subset for
    n = 10 is contained in the subset for n = 100: growing the data adds images, never swaps them.
    """
    chosen = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if per_class is not None and len(members) < per_class:
            raise ConfigError(f"class {c} has only {len(members)} training images; choose per_class <= {len(members)}")
        order = torch.randperm(len(members), generator=torch.Generator().manual_seed(seed * 1009 + c))
        chosen.append(members[order[:per_class]])
    return torch.sort(torch.cat(chosen)).values


def select_classes(ds: ImageDataset, classes: list[int] | tuple[int, ...]) -> ImageDataset:
    """The dataset restricted to `classes`, relabelled 0..len(classes)-1 in the order given."""
    remap = torch.full((ds.num_classes,), -1, dtype=torch.long)
    remap[torch.tensor(list(classes))] = torch.arange(len(classes))

    def keep(images, labels, texts):
        mask = remap[labels] >= 0
        kept_texts = tuple(texts[i] for i in torch.nonzero(mask).flatten().tolist()) if texts else ()
        return images[mask], remap[labels[mask]], kept_texts

    train_x, train_y, train_t = keep(ds.train_images, ds.train_labels, ds.train_texts)
    test_x, test_y, test_t = keep(ds.test_images, ds.test_labels, ds.test_texts)
    names = "+".join(str(c) for c in classes)
    return replace(
        ds,
        name=f"{ds.name}[{names}]",
        classes=tuple(ds.classes[c] for c in classes),
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        train_texts=train_t,
        test_texts=test_t,
    )


# --- registry --------------------------------------------------------------------------------


class Entry(NamedTuple):
    """A registered dataset: how to describe, load and identify it."""

    description: str
    load: Callable[..., ImageDataset]  # load(), or load(root) for an entry that takes a folder
    missing: Callable[[], str | None]  # why it cannot load offline now, or None
    test_only: bool = False
    version: Callable[[str | Path | None], str] = lambda root: BUILTIN_VERSION
    takes_root: bool = False
    facts: Callable[[], DatasetFacts] | None = None  # known without loading (an imported set's manifest)


_REGISTRY: dict[str, Entry] = {}
_TEXT: set[str] = set()  # the registered datasets whose examples are texts
# Families of names another module answers for (the imported sets): (list names, entry or None).
_SOURCES: list[tuple[Callable[[], list[str]], Callable[[str], Entry | None]]] = []


def register_dataset(
    name: str,
    description: str,
    missing: Callable[[], str | None],
    test_only: bool = False,
    modality: str = "image",
    version: Callable[[str | Path | None], str] | None = None,
):
    """Register a loader under `name`. With `version`, the loader takes a folder (`root`) and
    `version(root)` says what identifies that folder's content now."""

    def decorate(loader):
        kept = {"version": version, "takes_root": True} if version else {}
        _REGISTRY[name] = Entry(description, loader, missing, test_only, **kept)
        if modality == "text":
            _TEXT.add(name)
        return loader

    return decorate


def register_source(names: Callable[[], list[str]], find: Callable[[str], Entry | None]) -> None:
    """Register a family of datasets known by looking (`imports`' sets): `names()` lists them,
    `find(name)` gives a name's entry or None."""
    _SOURCES.append((names, find))


def list_datasets(include_test: bool = False, imported: bool = True) -> list[str]:
    """Registered dataset names, sorted, then the shared imported sets (`python -m transferlab import`)."""
    names = sorted(n for n, entry in _REGISTRY.items() if include_test or not entry.test_only)
    return names + ([n for listed, _ in _SOURCES for n in listed()] if imported else [])


def dataset_modality(name: str) -> str:
    """ "text" or "image", known without loading the data (imported sets are images)."""
    return "text" if name in _TEXT else "image"


def describe_dataset(name: str) -> str:
    return _entry(name).description


def dataset_status(name: str) -> tuple[bool, str]:
    """(loadable offline now, a sentence saying where it comes from or how to get it)."""
    why_not = _entry(name).missing()
    return (why_not is None, why_not or "ready")


def load_dataset(name: str, root: str | Path | None = None) -> ImageDataset:
    """Load a registered dataset (cached in memory while its version stays the same).

    Args:
        name: a name from `list_datasets()`.
        root: for `image_folder`, the folder of class sub-folders (or of train/ and test/).
    """
    entry = _entry(name)
    folder = str(Path(root).expanduser().resolve()) if entry.takes_root and root is not None else None
    return _load_cached(name, folder, entry.version(folder))


def dataset_version(name: str, root: str | Path | None = None) -> str:
    """What identifies the dataset's content now, cheaply: a constant for a built-in set, the
    import time of an imported set, a digest of every file's path, size and modification time
    for a folder. Results, feature caches and kept models are keyed by it, so a set changed under
    the same name is never answered from what was computed on the old one."""
    return _entry(name).version(root)


def dataset_facts(name: str, root: str | Path | None = None) -> DatasetFacts:
    """The classes and per-class counts of a dataset: from an imported set's manifest without
    reading an image, else from loading it (cached like `load_dataset`)."""
    entry = _entry(name)
    return entry.facts() if entry.facts is not None else DatasetFacts.of(load_dataset(name, root))


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, root: str | None, version: str) -> ImageDataset:
    entry = _entry(name)
    return replace(entry.load(root) if entry.takes_root else entry.load(), version=version)


def _entry(name: str) -> Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    for _, find in _SOURCES:
        if entry := find(name):
            return entry
    raise ConfigError(
        f"unknown dataset {name!r}; choose one of {', '.join(list_datasets(True))}, or import your images "
        "(python -m transferlab import)"
    )


def split_fixed(images, labels, test_per_class: int):
    """A fixed train/test split for datasets that ship none (seed 0, never changes)."""
    test = stratified_indices(labels, test_per_class, seed=0)
    train = torch.ones(len(labels), dtype=torch.bool)
    train[test] = False
    return images[train], labels[train], images[test], labels[test]

"""A finished comparison as plain data: what the dashboard shows, the run store keeps and a worker sends.

`ComparisonResult` holds the trained networks and the dataset; a server that keeps every
session's results cannot afford that. `Outcome` keeps only numbers and a few images: the result
table, the history, the test labels and each arm's predictions (enough for per-class accuracy
and confusion matrices), and up to `MISTAKES` misclassified test images (or texts) per arm.

    >>> outcome = Outcome.of(compare(config))     # then the networks can go
    >>> outcome.verdict(), outcome.gap, outcome.per_class()
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata

import numpy as np
import pandas as pd

from ..data.registry import dataset_version as current_version
from .comparison import ComparisonResult, Verdicts
from .config import ExperimentConfig, unit_config

__all__ = ["MISTAKES", "Outcome", "comparison_key", "package_versions"]

MISTAKES = 12  # misclassified test images kept per arm: one row of the dashboard's grid, twice


def comparison_key(config: ExperimentConfig, arms: tuple[str, ...], dataset_version: str | None = None) -> str:
    """What decides a comparison's numbers, as a short hash: equal keys train to equal results.

    Two students who ask for the same configuration, seed and arms get the same key, so the second
    joins or reuses the first's comparison instead of training it again. The dataset's version
    (default: what `dataset_version` says now) is part of it: a set re-imported or edited under
    the same name trains anew.
    """
    version = dataset_version if dataset_version is not None else current_version(config.dataset, config.root)
    what = {"config": asdict(config), "arms": list(arms), "dataset_version": version}
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def package_versions() -> dict[str, str]:
    """The versions a result depends on, recorded beside it."""
    versions = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "timm", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def examples(data, rows: np.ndarray) -> np.ndarray:
    """Test examples `rows` of an experiment as they are shown: uint8 images, or the texts."""
    if data.dataset.modality == "text":
        test_rows = data.rows["test"].tolist()
        return np.array([data.dataset.test_texts[test_rows[i]] for i in rows], dtype=str)
    return data.test_images[rows].cpu().numpy()


@dataclass
class Outcome(Verdicts):
    """One comparison's results, without networks or datasets.

    Attributes:
        config, arms: what was trained.
        table: a row per arm (`Run.row()`: test accuracy and loss, seconds, parameters, ...).
        history: every record (the tidy table `plots.learning_curves` takes).
        classes: the dataset's class names; `labels` the test split's labels, `predictions`
            each arm's predicted labels for the same images.
        mistakes: per arm, (images, labels, predictions) of up to `MISTAKES` test images it got
            wrong; for a text dataset the "images" are the texts (an array of str).
        stopped: ended early by a stop request (no verdict).
        device, versions, elapsed: where and with what it ran, and its wall time in seconds.
        dataset_version: the dataset's version it ran on (`datasets.dataset_version`).
    """

    config: ExperimentConfig
    arms: tuple[str, ...]
    table: pd.DataFrame
    history: pd.DataFrame
    classes: tuple[str, ...]
    labels: np.ndarray
    predictions: dict[str, np.ndarray]
    mistakes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False)
    stopped: bool = False
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0
    dataset_version: str = ""

    @classmethod
    def of(cls, result: ComparisonResult, elapsed: float = 0.0) -> Outcome:
        """The plain data of a `ComparisonResult` (copied to the CPU: the result can then be dropped)."""
        data = result.data
        labels = data.test_labels.cpu().numpy()
        predictions, mistakes = {}, {}
        for arm, run in result.runs.items():
            if run.test_predictions is None:  # stopped before its final test
                continue
            preds = run.test_predictions.cpu().numpy()
            wrong = np.flatnonzero(preds != labels)[:MISTAKES]
            predictions[arm] = preds
            mistakes[arm] = (examples(data, wrong), labels[wrong], preds[wrong])
        device = str(result.table.device.iloc[0]) if "device" in result.table else ""
        return cls(
            config=result.config,
            arms=tuple(result.runs),
            table=result.table,
            history=result.history,
            classes=tuple(data.dataset.classes),
            labels=labels,
            predictions=predictions,
            mistakes=mistakes,
            stopped=result.stopped,
            device=device,
            versions=package_versions(),
            elapsed=round(elapsed, 2),
            dataset_version=data.dataset.version,
        )

    @classmethod
    def merge(cls, config: ExperimentConfig, parts: Sequence[Outcome]) -> Outcome:
        """One comparison of `config` from its arms trained as units (`unit_config`), one arm or
        more per part: the same numbers as training them together, since each run owns its random
        state. Raises `ValueError` when the parts were tested on different splits."""
        first = parts[0]
        for part in parts[1:]:
            if part.dataset_version != first.dataset_version or not np.array_equal(part.labels, first.labels):
                raise ValueError("these arms were tested on different test splits: they are not one comparison")
        return cls(
            config=config,
            arms=tuple(arm for part in parts for arm in part.arms),
            table=pd.concat([part.table for part in parts], ignore_index=True),
            history=pd.concat([part.history for part in parts], ignore_index=True),
            classes=first.classes,
            labels=first.labels,
            predictions={arm: p for part in parts for arm, p in part.predictions.items()},
            mistakes={arm: m for part in parts for arm, m in part.mistakes.items()},
            stopped=any(part.stopped for part in parts),
            device=first.device,
            versions=first.versions,
            elapsed=round(sum(part.elapsed for part in parts), 2),
            dataset_version=first.dataset_version,
        )

    @property
    def key(self) -> str:
        return comparison_key(self.config, self.arms, self.dataset_version)

    def unit_key(self, arm: str) -> str:
        """The key of the unit that trained `arm` of this comparison (a kept model is found by it)."""
        return comparison_key(unit_config(self.config, arm), (arm,), self.dataset_version)

    def correct(self, arm: str) -> np.ndarray:
        return np.asarray(self.predictions[arm]) == np.asarray(self.labels)

    def num_classes(self) -> int:
        return len(self.classes)

    def per_class(self) -> pd.DataFrame:
        """Test accuracy per class and arm: a row per (arm, class)."""
        rows = []
        for arm, preds in self.predictions.items():
            for c, name in enumerate(self.classes):
                mask = self.labels == c
                rows.append(
                    {"arm": arm, "class": name, "accuracy": float((preds[mask] == c).mean()) if mask.any() else None}
                )
        return pd.DataFrame(rows, columns=["arm", "class", "accuracy"])

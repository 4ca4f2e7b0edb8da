"""What decides an experiment: the config, the arms, and the plan (how much work a run is).

A **run** trains one **arm** once; a **comparison** trains several arms on the same data. Its
length is a **budget** of optimiser steps, the same for every dataset size and every arm, so that
"more data" never silently means "more training" (`steps`). Those who think in passes over the
data set `epochs` instead. `plan()` turns a config and a training-set size into the exact
schedule, and refuses (with what to change) a config that cannot run or exceeds a server's cap:
the command line, the dashboard and `compare()` all call it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..data.registry import dataset_modality
from ..errors import ConfigError
from ..models.registry import get_spec, list_backbones

__all__ = [
    "ARMS",
    "Arm",
    "DEFAULT_STEPS",
    "ExperimentConfig",
    "PATIENCE_CAP",
    "PRECISIONS",
    "Plan",
    "plan",
    "unit_config",
]

PRECISIONS = ("auto", "fp32")
DEFAULT_STEPS = 60  # 15 epochs of the dashboard's default 100 images: seconds on a laptop CPU
EVAL_POINTS = 15  # validation measurements per run: a curve's points, whatever its length
PATIENCE_CAP = 10  # with patience, an arm may take up to this many times the fixed budget


def _field(default, help: str, address: str | None = None):
    """A config field with its help (the command line's and the docs') and, for the settings the
    dashboard shows, its short name in the page's address."""
    return field(default=default, metadata={"help": help, "address": address})


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides an experiment's numbers; `asdict()` gives table rows and keys.

    Each field's meaning is its help, written once below: `python -m transferlab compare --help`
    lists them all, and the command line's options and the dashboard's address are made from
    them (`settings.py`), so a new field is everywhere at once.
    """

    dataset: str = _field("fashion_mnist", "a dataset's name (python -m transferlab datasets)", "dataset")
    backbone: str = _field("efficientnet_lite0", "a backbone's name (python -m transferlab backbones)", "backbone")
    per_class: int | None = _field(
        10, "training images per class, drawn stratified from the seed ('all': every one)", "n"
    )
    freeze_depth: int = _field(4, "k: the first k blocks are frozen in the finetune arm", "k")
    steps: int | None = _field(
        None,
        f"the training budget in optimiser steps, the same for every size (none: {DEFAULT_STEPS}, unless epochs)",
        "steps",
    )
    epochs: int | None = _field(
        None, "the budget in passes over the training images instead (set one of steps and epochs)"
    )
    patience: int | None = _field(
        None,
        "train each arm until it stops improving instead: end it once its validation accuracy has not reached "
        "a new best for this many validation points (spaced as in the fixed budget), keep its best weights, "
        "and report the steps it used (none: the fixed budget)",
        "patience",
    )
    max_steps: int | None = _field(
        None,
        f"with patience, the most steps an arm may take (none: {PATIENCE_CAP} times the budget); "
        "the learning rate decays over this cap",
    )
    lr: float = _field(1e-3, "the learning rate (AdamW, cosine decay to zero)", "lr")
    head_lr_mult: float = _field(1.0, "the head's learning rate is lr times this", "head")
    batch_size: int = _field(32, "images per optimiser step")
    weight_decay: float = _field(1e-4, "AdamW's weight decay")
    image_size: int | None = _field(None, "input size in pixels (none: the backbone's CPU-friendly default)", "px")
    augment: bool = _field(
        False,
        "random flips, scales and shifts on tensors (with a frozen prefix, features of augment_views "
        "copies are cached and cycled)",
        "augment",
    )
    augment_views: int = _field(
        4, "with augment and a frozen prefix: augmented copies of the training images whose features are cached"
    )
    seed: int = _field(0, "draws the training images, the initial weights and the batches' order", "seed")
    val_per_class: int = _field(
        50,
        "the validation split, drawn from the training pool (never the test split, never overlapping "
        "the training images): at most this many per class and at most a fifth of each class; curves and "
        "choices use it",
    )
    test_per_class: int | None = _field(
        200, "the fixed test split's size per class (none: the whole test set), measured once, at the end of a run"
    )
    label_noise: float = _field(
        0.0, "this share of the training images get a label drawn at random from the seed (1.0 shuffles them all)"
    )
    classes: tuple[int, ...] | None = _field(
        None, "use only these class indices of the dataset, relabelled in this order, e.g. 0,2,4"
    )
    root: str | None = _field(None, "the folder of class sub-folders, for the image_folder dataset")
    freeze_bn_stats: bool = _field(
        True, "keep BatchNorm in frozen blocks in eval mode (right for transfer; off to see why)"
    )
    cache_features: bool = _field(True, "compute the frozen prefix once instead of every batch")
    precision: str = _field(
        "auto",
        "auto: bfloat16 where the hardware is fast at it (everything on CUDA; on CPUs with native bf16 only the "
        "no-gradient passes, the frozen prefix and evaluation), float32 elsewhere; fp32: float32 everywhere, "
        "the same numbers on every CPU",
    )
    device: str = _field("auto", "auto (cuda, then mps, then cpu) or a torch device string")

    @property
    def size(self) -> int:
        return self.image_size or get_spec(self.backbone).train_size

    def validate(self) -> None:
        """Raise `ConfigError` with what to change, before any work is done."""
        spec = get_spec(self.backbone)
        checks = [
            (self.per_class is None or self.per_class >= 1, "per_class must be at least 1 (or None for all)"),
            (self.steps is None or self.epochs is None, "give the budget in steps or in epochs, not both"),
            (self.steps is None or self.steps >= 1, "steps must be at least 1"),
            (self.epochs is None or self.epochs >= 1, "epochs must be at least 1"),
            (self.patience is None or self.patience >= 1, "patience must be at least 1 validation point"),
            (
                self.max_steps is None or self.patience is not None,
                "max_steps caps a run with patience; set patience too",
            ),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.batch_size >= 2, "batch_size must be at least 2 (BatchNorm needs two images)"),
            (self.size >= 16, "image_size must be at least 16 pixels"),
            (self.augment_views >= 1, "augment_views must be at least 1"),
            (self.val_per_class >= 0, "val_per_class must be 0 or more"),
            (0 <= self.label_noise <= 1, "label_noise must be between 0 and 1"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (
                0 <= self.freeze_depth <= spec.num_blocks,
                f"freeze_depth must be 0..{spec.num_blocks} for {spec.name} ({', '.join(spec.blocks)})",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self._check_modality(spec)

    def _check_modality(self, spec) -> None:
        """A text dataset needs a text backbone and the other way round; text is not augmented."""
        data = dataset_modality(self.dataset)
        if spec.modality != data:
            fits = ", ".join(list_backbones(modality=data)) or "none registered"
            raise ConfigError(
                f"{self.dataset} is {data} data and {spec.name} reads {spec.modality}; choose a {data} backbone: {fits}"
            )
        if data == "text" and self.augment:
            raise ConfigError("augment applies to images only; turn it off for text")


@dataclass(frozen=True)
class Plan:
    """A run's schedule: every training image is seen once per epoch, in batches of
    `batch_size` (a last batch of one image joins the one before: BatchNorm needs two)."""

    train_images: int
    batch_sizes: tuple[int, ...]  # one epoch's batches
    steps: int  # the budget; with `patience`, the cap
    eval_steps: tuple[int, ...]  # after which steps the validation split is measured
    patience: int | None = None  # end after this many validation points without a new best

    @property
    def batches_per_epoch(self) -> int:
        return len(self.batch_sizes)

    @property
    def epochs(self) -> float:
        return self.steps / self.batches_per_epoch

    @property
    def images(self) -> int:
        """Training images one arm processes over the whole budget."""
        full, rest = divmod(self.steps, self.batches_per_epoch)
        return full * self.train_images + sum(self.batch_sizes[:rest])

    def scaled(self, mult: int) -> Plan:
        """The same schedule over `mult` times the steps (an arm with a larger budget)."""
        evals = tuple(s * mult for s in self.eval_steps)
        return Plan(self.train_images, self.batch_sizes, self.steps * mult, evals, self.patience)

    def describe(self) -> str:
        """E.g. "60 steps of up to 32 images = 15 epochs of 100 images", or with patience "until
        validation accuracy has not improved for 10 points (40 steps), at most 600 steps ..."."""
        epochs = f"{self.epochs:.3g}"
        budget = (
            f"{self.steps:,} steps of up to {max(self.batch_sizes)} images = {epochs} "
            f"epoch{'' if epochs == '1' else 's'} of {self.train_images:,} images"
        )
        if self.patience is None:
            return budget
        every = self.eval_steps[0]
        return (
            f"until validation accuracy has not improved for {self.patience} points "
            f"({self.patience * every} steps), at most {budget}"
        )


def batch_sizes(n: int, batch_size: int) -> tuple[int, ...]:
    full, rest = divmod(n, batch_size)
    sizes = [batch_size] * full + ([rest] if rest else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [sizes[-2] + 1]
    return tuple(sizes)


def plan(config: ExperimentConfig, train_images: int, max_work: int | None = None) -> Plan:
    """Check `config` and say how much work one arm does on `train_images` images.

    Args:
        max_work: a server's cap on training images per arm (steps x batch), so that one
            comparison cannot hold the device for everyone; exceeding it raises `ConfigError`
            saying what to choose instead.
    """
    config.validate()
    if train_images < 2:
        raise ConfigError(f"training needs at least 2 images; this config gives {train_images}")
    sizes = batch_sizes(train_images, config.batch_size)
    steps = config.epochs * len(sizes) if config.epochs else (config.steps or DEFAULT_STEPS)
    if config.patience is not None:  # validation points as in the fixed budget, on to the cap
        every = len(sizes) if config.epochs and config.epochs <= EVAL_POINTS else max(1, round(steps / EVAL_POINTS))
        steps = config.max_steps or steps * PATIENCE_CAP
        evals = tuple(sorted({*range(every, steps + 1, every), steps}))
    elif config.epochs and config.epochs <= EVAL_POINTS:
        evals = tuple(e * len(sizes) for e in range(1, config.epochs + 1))
    else:
        evals = tuple(sorted({max(1, round(i * steps / EVAL_POINTS)) for i in range(1, EVAL_POINTS + 1)}))
    result = Plan(train_images, sizes, steps, evals, config.patience)
    if max_work is not None and result.images > max_work:
        most = max(1, math.floor(steps * max_work / result.images))
        unit = f"{most:,} steps" if not config.epochs else f"{max(1, most // len(sizes))} epochs"
        raise ConfigError(
            f"This comparison trains {result.describe()}: {result.images:,} images per arm, and this "
            f"server allows {max_work:,}. Choose at most {unit}."
        )
    return result


@dataclass(frozen=True)
class Arm:
    """One side of a comparison.

    Attributes:
        name: the arm's label in records and tables.
        init: "pretrained", "random", or a state dict of the backbone's blocks (e.g. weights
            pretrained on a source task, for Yosinski-style arms); "baseline" for a cheap model
            with no network at all (`baselines`, named by the arm).
        freeze: "config" (the config's freeze depth), "none", "all", or a depth.
        lr_mult: scales the config's learning rate for the blocks (not the head).
        budget_mult: this arm trains `budget_mult` times the config's budget (e.g. a scratch
            arm given ten times the steps, to see how much of a gap is training time).
        fit: "steps" trains with AdamW over the budget; "converge" (every block frozen) fits the
            head to convergence instead, by the same logistic regression as the pixel and TF-IDF
            baselines, on the frozen features: every linear model in a comparison is fitted by
            the same rule.
        tune_lr: choose this arm's learning rate on the validation split among `TUNED_LRS`
            times the config's, each candidate trained with the same budget (e.g. a scratch
            arm with its own tuned rate: was scratch just badly tuned?).
    """

    name: str
    init: str | Mapping = "pretrained"
    freeze: str | int = "config"
    lr_mult: float = 1.0
    budget_mult: int = 1
    fit: str = "steps"
    tune_lr: bool = False

    def depth(self, config: ExperimentConfig) -> int:
        n = get_spec(config.backbone).num_blocks
        return {"config": config.freeze_depth, "none": 0, "all": n}.get(self.freeze, self.freeze)

    @property
    def uses_depth(self) -> bool:
        """Whether the config's freeze depth changes this arm's run (scratch, probe and the
        baselines are the same run at every depth)."""
        return self.freeze == "config" and self.init != "baseline"


TUNED_LRS = (0.3, 1.0, 3.0, 10.0)  # an arm with `tune_lr` tries the config's rate times each

ARMS = {
    "finetune": Arm("finetune", "pretrained", "config"),
    "scratch": Arm("scratch", "random", "none"),
    "probe": Arm("probe", "pretrained", "all", fit="converge"),
    # Scratch with its own learning rate, chosen on the validation split (`TUNED_LRS`).
    "scratch_tuned": Arm("scratch_tuned", "random", "none", tune_lr=True),
    # Cheap baselines from scratch (`baselines.BaselineRun`): logistic regression on raw pixels
    # (images) or on TF-IDF features of the words (text).
    "pixels": Arm("pixels", "baseline"),
    "tfidf": Arm("tfidf", "baseline"),
}


def unit_config(config: ExperimentConfig, arm: str) -> ExperimentConfig:
    """The config that trains `arm` alone as a unit: an arm that does not use the freeze depth gets
    depth 0, so that comparisons at every depth share one run of it (the grid's and the queue's)."""
    return config if ARMS[arm].uses_depth else replace(config, freeze_depth=0)

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
from dataclasses import dataclass

from ..data.registry import dataset_modality
from ..errors import ConfigError
from ..models.registry import get_spec, list_backbones

__all__ = ["ARMS", "Arm", "DEFAULT_STEPS", "ExperimentConfig", "PATIENCE_CAP", "PRECISIONS", "Plan", "plan"]

PRECISIONS = ("auto", "fp32")
DEFAULT_STEPS = 60  # 15 epochs of the dashboard's default 100 images: seconds on a laptop CPU
EVAL_POINTS = 15  # validation measurements per run: a curve's points, whatever its length
PATIENCE_CAP = 10  # with patience, an arm may take up to this many times the fixed budget


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides an experiment's numbers; `asdict()` gives table rows and keys.

    Attributes:
        dataset, backbone: registry names.
        per_class: training images per class (None: all), drawn stratified from `seed`.
        freeze_depth: k; the first k blocks are frozen in the `finetune` arm.
        steps: the training budget in optimiser steps (None: `DEFAULT_STEPS`, unless `epochs`).
        epochs: the budget in passes over the training images instead (set one of the two).
        patience: train each arm until it stops improving instead: end it once its validation
            accuracy has not reached a new best for this many validation points (spaced as in
            the fixed budget), keep its best weights, and report the steps it used. None: the
            fixed budget.
        max_steps: with `patience`, the most steps an arm may take (None: `PATIENCE_CAP` times
            the budget); the learning rate decays over this cap.
        lr, batch_size, weight_decay: optimisation (AdamW, cosine decay to zero).
        head_lr_mult: the head's learning rate is `lr * head_lr_mult`.
        image_size: input size in pixels (None: the backbone's CPU-friendly default).
        augment: random flips, scales and shifts on tensors; with a frozen prefix, features of
            `augment_views` augmented copies of the training images are cached and cycled.
        val_per_class: the validation split, drawn from the training pool (never from the test
            split and never overlapping the training images): at most this many per class and
            at most a fifth of each class. Curves and choices use it.
        test_per_class: size of the fixed test split per class (None: the whole test set). The
            test split is measured once, at the end of a run.
        label_noise: this share of the training images get a label drawn at random (from the
            seed), for sources trained on corrupted labels; 1.0 shuffles them all.
        classes: use only these class indices of the dataset (relabelled in this order).
        root: folder for the `image_folder` dataset.
        freeze_bn_stats: keep BatchNorm in frozen blocks in eval mode (True is correct).
        cache_features: compute the frozen prefix once instead of every batch.
        precision: "auto" runs in bfloat16 where the hardware is fast at it (everything on CUDA;
            on CPUs with native bf16, only the no-gradient passes: the frozen prefix and
            evaluation), float32 elsewhere; "fp32" runs float32 everywhere.
        device: "auto" (cuda, then mps, then cpu) or a torch device string.
    """

    dataset: str = "fashion_mnist"
    backbone: str = "efficientnet_lite0"
    per_class: int | None = 10
    freeze_depth: int = 4
    steps: int | None = None
    epochs: int | None = None
    patience: int | None = None
    max_steps: int | None = None
    lr: float = 1e-3
    head_lr_mult: float = 1.0
    batch_size: int = 32
    weight_decay: float = 1e-4
    image_size: int | None = None
    augment: bool = False
    augment_views: int = 4
    seed: int = 0
    val_per_class: int = 50
    test_per_class: int | None = 200
    label_noise: float = 0.0
    classes: tuple[int, ...] | None = None
    root: str | None = None
    freeze_bn_stats: bool = True
    cache_features: bool = True
    precision: str = "auto"
    device: str = "auto"

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

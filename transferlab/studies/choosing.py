"""Choosing a backbone: the same comparison on the same target at the same budget, per backbone.

    choice = compare_backbones(ExperimentConfig(per_class=10, freeze_depth=4), seeds=(0, 1))
    choice.table     # a row per backbone and arm: parameters, seconds, test accuracy (mean, spread)
    choice.skipped   # backbone -> why it was left out (weights not on this machine)

Bigger is not always worth it: a larger network costs more time per run and per prediction, and
at a small input size on a CPU its accuracy may be within seed noise of a smaller one's.

Freeze depth across backbones: `config.freeze_depth` counts blocks of `config.backbone`. A
backbone with as many blocks (EfficientNet-Lite0, Lite1 and Lite2 all have 9) uses it as it is;
one with a different number of blocks freezes the same share of its blocks, rounded
(k = 4 of Lite0's 9 is 2 of ResNet-18's 5). "Nothing frozen" and "the probe" stay themselves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd
import torch

from ..device import pick_device
from ..errors import ConfigError
from ..models.registry import backbone_status, create_backbone, get_spec
from ..training.comparison import compare
from ..training.config import ExperimentConfig, plan

__all__ = ["BackboneChoice", "LITE_BACKBONES", "compare_backbones", "equivalent_depth", "prediction_speed"]

LITE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@dataclass
class BackboneChoice:
    """What `compare_backbones` returns.

    Attributes:
        table: a row per backbone and arm: parameters, freeze_depth, seconds (a run's own time,
            mean over seeds; it includes computing the frozen prefix's features, except those
            an earlier run in this process cached: the validation and test splits' after the first seed),
            test_accuracy (mean over seeds), test_accuracy_spread (standard deviation over seeds;
            NaN with one seed), train_images_per_s (training images a run processed per second
            of its own time), predict_images_per_s (whole-network inference, from `prediction_speed`).
        runs: a row per backbone, arm and seed (each run's `Run.row()`).
        history: every run's records, with `backbone` and `seed` columns.
        skipped: backbone -> why it was not run (its weights are not on this machine).
    """

    table: pd.DataFrame
    runs: pd.DataFrame
    history: pd.DataFrame = field(repr=False)
    skipped: dict[str, str]


def equivalent_depth(config: ExperimentConfig, backbone: str) -> int:
    """`config.freeze_depth` carried over to `backbone`: the same k when it has as many blocks as
    `config.backbone`, otherwise the same share of its blocks, rounded (0 and "all" stay so)."""
    k, n = config.freeze_depth, get_spec(config.backbone).num_blocks
    m = get_spec(backbone).num_blocks
    return k if m == n else round(k * m / n)


@torch.no_grad()
def prediction_speed(backbone: str, size: int, device: torch.device | str = "cpu", batch: int = 64) -> float:
    """Images per second through the whole network (random init, eval mode, float32) at `size`
    pixels on `device`: what each prediction costs once the model is trained. The best of five
    timed batches, after one untimed pass that allocates."""
    model = create_backbone(backbone, num_classes=10, pretrained=False).eval().to(device)
    model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    model(x).sum().item()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        model(x).sum().item()  # .item() waits for the device to finish
        best = min(best, time.perf_counter() - started)
    return batch / best


def compare_backbones(
    config: ExperimentConfig,
    backbones: Sequence[str] = (*LITE_BACKBONES, "mobilenet_v3_small", "resnet18"),
    arms: Sequence[str] = ("finetune",),
    seeds: Sequence[int] = (0,),
) -> BackboneChoice:
    """Run `compare(config, arms)` for each available backbone and seed, on the same data and budget.

    Args:
        config: the experiment; its `backbone` and `freeze_depth` define the freeze depth each
            backbone gets (`equivalent_depth`). Its image size (None: each backbone's default
            training size) and step budget are the same for all.
        backbones: registry names; those whose weights are not here are skipped, with the
            reason in `skipped` (the torchvision ones unless their weights are cached).
        arms: arm names for `compare` (e.g. "finetune", "probe", "scratch").
        seeds: one run per seed; two or more give the spread to judge a difference by.

    Returns:
        A `BackboneChoice`.
    """
    if not backbones or not seeds:
        raise ConfigError("compare_backbones needs at least one backbone and one seed")
    config.validate()
    rows, histories, skipped = [], [], {}
    for name in backbones:
        ready, why = backbone_status(name)
        if not ready:
            skipped[name] = why
            continue
        for seed in seeds:
            cfg = replace(config, backbone=name, freeze_depth=equivalent_depth(config, name), seed=seed)
            result = compare(cfg, arms)
            images = plan(cfg, len(result.data.train_labels)).images
            for row in result.table.to_dict("records"):
                rows.append({**row, "train_images_per_s": images / max(row["seconds"], 1e-3)})
            histories.append(result.history.assign(backbone=name, seed=seed))
    if not rows:
        raise ConfigError(
            "none of the backbones is available here: " + "; ".join(f"{b}: {w}" for b, w in skipped.items())
        )
    runs, history = pd.DataFrame(rows), pd.concat(histories, ignore_index=True)
    return BackboneChoice(summarise(runs, pick_device(config.device)), runs, history, skipped)


def summarise(runs: pd.DataFrame, device: torch.device) -> pd.DataFrame:
    """A row per backbone and arm of `runs` (a row per run): means over seeds and the spread,
    and each backbone's prediction speed on `device`."""
    grouped = runs.groupby(["backbone", "arm"], sort=False)
    table = grouped.agg(
        parameters=("total_params", "first"),
        freeze_depth=("freeze_depth", "first"),
        image_size=("image_size", "first"),
        seeds=("seed", "nunique"),
        seconds=("seconds", "mean"),
        test_accuracy=("test_accuracy", "mean"),
        test_accuracy_spread=("test_accuracy", "std"),
        train_images_per_s=("train_images_per_s", "mean"),
    ).reset_index()
    speed = {b: prediction_speed(b, s, device) for b, s in zip(table.backbone, table.image_size)}
    table["predict_images_per_s"] = table.backbone.map(speed)
    return table

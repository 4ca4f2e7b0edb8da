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
from collections.abc import Mapping, Sequence
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
            of its own time), multiply_adds (per image, whole network: a cost no machine changes),
            predict_images_per_s (whole-network inference, timed side by side: `prediction_speeds`).
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
def multiply_adds(backbone: str, size: int) -> int:
    """Multiply-adds for one image of `size` pixels through the whole network (its convolutions and
    linear layers): a prediction's cost that no machine or load changes, unlike seconds."""
    model = create_backbone(backbone, num_classes=10, pretrained=False).eval()
    total = 0

    def count(layer: torch.nn.Module, _, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, torch.nn.Conv2d):
            total += out.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        else:
            total += out.numel() * layer.in_features

    hooks = [
        m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    try:
        model(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    return total


@torch.no_grad()
def prediction_speeds(
    backbones: Mapping[str, int], device: torch.device | str = "cpu", batch: int = 64, rounds: int = 5
) -> dict[str, float]:
    """Images per second through each whole network ({backbone: size}; random init, eval mode,
    float32) on `device`: what each prediction costs once the model is trained. Timed side by
    side: one untimed warm-up pass each, then `rounds` rounds that time one batch of every network
    in turn, the best round of each. A load that comes and goes then falls on every network alike,
    where timing them one after the other let it fall on one (lesson 11 once timed Lite2 faster
    than Lite0)."""
    models, inputs = {}, {}
    for name, size in backbones.items():
        models[name] = create_backbone(name, num_classes=10, pretrained=False).eval().to(device)
        models[name].to(memory_format=torch.channels_last)
        inputs[name] = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
        models[name](inputs[name]).sum().item()
    best = dict.fromkeys(models, float("inf"))
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model(inputs[name]).sum().item()  # .item() waits for the device to finish
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: batch / seconds for name, seconds in best.items()}


def prediction_speed(backbone: str, size: int, device: torch.device | str = "cpu", batch: int = 64) -> float:
    """Images per second through one whole network (see `prediction_speeds`)."""
    return prediction_speeds({backbone: size}, device, batch)[backbone]


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
    sizes = dict(zip(table.backbone, table.image_size.astype(int)))
    table["multiply_adds"] = table.backbone.map({b: multiply_adds(b, s) for b, s in sizes.items()})
    table["predict_images_per_s"] = table.backbone.map(prediction_speeds(sizes, device))
    return table

"""Freeze depth: the first k blocks of a backbone stop learning; the rest and the head train."""

from __future__ import annotations

import pandas as pd
import torch

from ..errors import ConfigError
from .registry import BlockNet

__all__ = ["block_change", "freeze_to", "trainable_summary", "weight_snapshot"]


def freeze_to(model: BlockNet, k: int, freeze_bn_stats: bool = True) -> pd.DataFrame:
    """Freeze blocks 1..k (no gradients), train blocks k+1..n and the head.

    With `freeze_bn_stats` (the default, and the right thing), BatchNorm layers in frozen blocks
    stay in eval mode even after `model.train()`, so their running statistics keep the
    pretrained values. `freeze_bn_stats=False` lets them drift: lesson 3 shows what that costs.

    Returns:
        `trainable_summary(model)`: one row per block and the head.
    """
    n = model.spec.num_blocks
    if not 0 <= k <= n:
        raise ConfigError(
            f"freeze depth {k} is out of range for {model.spec.name}: choose 0 (train everything) "
            f"to {n} (a linear probe on {model.spec.blocks[-1]})"
        )
    for i, block in enumerate(model.blocks.values()):
        block.requires_grad_(i >= k)
    model.head.requires_grad_(True)
    model.frozen_depth = k
    model.frozen_bn_eval = freeze_bn_stats
    model.train(model.training)  # re-apply eval mode to the newly frozen blocks
    return trainable_summary(model)


def trainable_summary(model: BlockNet) -> pd.DataFrame:
    """Parameters per block and the head, and whether each trains (a tidy table)."""
    rows = [
        {
            "block": name,
            "parameters": sum(p.numel() for p in m.parameters()),
            "trainable": any(p.requires_grad for p in m.parameters()),
        }
        for name, m in [*model.blocks.items(), ("head", model.head)]
    ]
    return pd.DataFrame(rows)


def weight_snapshot(model: BlockNet) -> dict[str, torch.Tensor]:
    """Each block's (and the head's) parameters as one flat CPU vector: where training starts."""
    parts = {**model.blocks, "head": model.head}
    return {name: _flat(part) for name, part in parts.items()}


def block_change(model: BlockNet, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each block's relative weight change since `start`: ||w - w0|| / ||w0|| (0 for a frozen block).

    For a fine-tuned network `start` is the pretrained weights (and the new head's initial ones),
    for scratch the random initial weights: the learner sees which blocks training moved.
    """
    now = weight_snapshot(model)
    return {name: float((now[name] - w0).norm() / w0.norm().clamp_min(1e-12)) for name, w0 in start.items()}


def _flat(module: torch.nn.Module) -> torch.Tensor:
    params = [p.detach().float().flatten().cpu() for p in module.parameters()]
    return torch.cat(params) if params else torch.zeros(1)

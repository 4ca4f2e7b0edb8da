"""labnet, a small CNN whose source task the project controls, and the test suite's tiny CNN.

labnet's shipped weights were pretrained here on Fashion-MNIST classes 0-4
(scripts/pretrain_labnet.py), for transfer experiments whose source task is known exactly.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .._paths import shipped_dir
from ..errors import Unavailable
from .registry import BackboneSpec, register_backbone

__all__ = ["LABNET_WEIGHTS", "labnet_blocks"]

LABNET_WEIGHTS = "labnet_fashion_mnist_0-4.pt"


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def labnet_blocks(widths: tuple[int, ...] = (32, 64, 128, 256)) -> OrderedDict[str, nn.Module]:
    """labnet's blocks: conv-conv-pool, each halving the resolution (32 px -> 2 px)."""
    channels = (3, *widths)
    return OrderedDict((f"block{i + 1}", _conv_block(channels[i], channels[i + 1])) for i in range(len(widths)))


def _labnet_missing() -> str | None:
    path = shipped_dir() / LABNET_WEIGHTS
    if path.exists():
        return None
    return f"{path} is missing: run `python scripts/pretrain_labnet.py` to make it (about a minute)"


_LABNET = BackboneSpec(
    name="labnet",
    description="labnet, a 4-block CNN pretrained here on Fashion-MNIST classes 0-4",
    blocks=("block1", "block2", "block3", "block4"),
    pretrained_on="Fashion-MNIST classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat)",
    weights_source=f"data/{LABNET_WEIGHTS}, made by scripts/pretrain_labnet.py",
    input_size=32,
    train_size=32,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)


@register_backbone(_LABNET, _labnet_missing)
def _labnet(pretrained: bool):
    blocks = labnet_blocks()
    if pretrained:
        why_not = _labnet_missing()
        if why_not:
            raise Unavailable(f"labnet weights: {why_not}")
        state = torch.load(shipped_dir() / LABNET_WEIGHTS, map_location="cpu", weights_only=True)
        nn.ModuleDict(blocks).load_state_dict(state, strict=True)
    return blocks, 256, None


# --- a tiny backbone for the test suite: same code path, trains in milliseconds -------------

_TINY = BackboneSpec(
    name="test_tiny",
    description="tiny 3-block CNN for tests (its 'pretrained' weights are a fixed seed)",
    blocks=("block1", "block2", "block3"),
    pretrained_on="nothing (fixed random weights)",
    weights_source="generated from seed 1234",
    input_size=16,
    train_size=16,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    test_only=True,
)


@register_backbone(_TINY, lambda: None)
def _test_tiny(pretrained: bool):
    with torch.random.fork_rng():
        if pretrained:
            torch.manual_seed(1234)
        blocks = labnet_blocks(widths=(4, 8, 8))
    return blocks, 8, None

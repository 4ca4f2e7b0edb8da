"""The model registry: backbones as networks split into an ordered list of named blocks, plus a new head.

Every backbone is a `BlockNet`: `blocks` (an ordered `nn.ModuleDict`) followed by `head`
(global pooling and a linear classifier). Freezing, feature caching and the dashboard's slider
all walk `blocks`, so a backbone declares its structure once, as data (a `BackboneSpec`).
The builders register themselves from their own modules (`efficientnet_lite`,
`torchvision_nets`, `labnet`, `textnet`); this module imports none of them.

    >>> list_backbones()
    ['efficientnet_lite0', 'labnet', 'mobilenet_v3_small', 'resnet18']
    >>> model = create_backbone("efficientnet_lite0", num_classes=10)   # ImageNet weights, offline
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "BlockNet",
    "backbone_status",
    "create_backbone",
    "get_spec",
    "list_backbones",
    "register_backbone",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_pooling() -> tuple[nn.Module, ...]:
    """Global average pooling to one vector per image."""
    return (nn.AdaptiveAvgPool2d(1), nn.Flatten())


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is, declared as data.

    Attributes:
        name: registry name.
        description: one line for menus.
        blocks: block names, input to output; freeze depth k freezes the first k.
        pretrained_on: what the pretrained weights learned (for the UI and lessons).
        weights_source: where the weights come from, for messages.
        input_size: the image size the weights were trained at (used for prediction).
        train_size: the default training size, small enough for a 2-core CPU.
        mean, std: per-channel normalisation of pixels scaled to 0..1.
        test_only: a tiny entry for the test suite, hidden from menus.
        modality: "image" (uint8 pixels in) or "text" (token ids in; `textnet`). For text,
            input_size and train_size are the sequence length in tokens.
        pooling: makes the layers between the last block and a new linear classifier (global
            average pooling for images; `textnet` pools over a text's real tokens).
    """

    name: str
    description: str
    blocks: tuple[str, ...]
    pretrained_on: str
    weights_source: str
    input_size: int
    train_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    test_only: bool = False
    modality: str = "image"
    pooling: Callable[[], tuple[nn.Module, ...]] = image_pooling

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)


class BlockNet(nn.Module):
    """A backbone as named blocks followed by a head: `head(blocks[n-1](...blocks[0](x)))`."""

    def __init__(self, spec: BackboneSpec, blocks: OrderedDict[str, nn.Module], head: nn.Module):
        super().__init__()
        if tuple(blocks) != spec.blocks:
            raise ValueError(f"{spec.name}: built blocks {tuple(blocks)} != spec {spec.blocks}")
        self.spec = spec
        self.blocks = nn.ModuleDict(blocks)
        self.head = head
        self.frozen_depth = 0  # set by freezing.freeze_to
        self.frozen_bn_eval = True

    def train(self, mode: bool = True) -> BlockNet:
        """Like `nn.Module.train`, but frozen blocks stay in eval mode, so their BatchNorm
        running statistics do not move (the frozen prefix stays a fixed function)."""
        super().train(mode)
        if mode and self.frozen_bn_eval:
            for block in list(self.blocks.values())[: self.frozen_depth]:
                block.eval()
        return self

    def forward_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run blocks[start:stop]; `forward_blocks(x, 0, k)` is the frozen prefix at depth k."""
        for block in list(self.blocks.values())[start:stop]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Logits; with `start=k`, `x` is the output of block k (cached features)."""
        return self.head(self.forward_blocks(x, start))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features (B, F): what a linear probe sees."""
        return self.head[:-1](self.forward_blocks(x))


def _classifier_head(spec: BackboneSpec, num_features: int, num_classes: int) -> nn.Sequential:
    """The spec's pooling and a new linear classifier."""
    return nn.Sequential(*spec.pooling(), nn.Linear(num_features, num_classes))


# --- registry --------------------------------------------------------------------------------

# A builder returns (blocks, num_features, the pretrained classifier or None); it loads
# pretrained weights itself when asked, so `create_backbone` stays one short function.
Builder = Callable[[bool], tuple["OrderedDict[str, nn.Module]", int, nn.Module | None]]
_REGISTRY: dict[str, tuple[BackboneSpec, Builder, Callable[[], str | None]]] = {}


def register_backbone(spec: BackboneSpec, missing: Callable[[], str | None]):
    """Register a builder under `spec.name`; `missing()` says why weights are unavailable, or None."""

    def decorate(builder: Builder) -> Builder:
        _REGISTRY[spec.name] = (spec, builder, missing)
        return builder

    return decorate


def list_backbones(include_test: bool = False, modality: str | None = None) -> list[str]:
    """Registered backbone names, sorted; test entries only when asked; of one modality if given."""
    return sorted(
        n for n, (s, _, _) in _REGISTRY.items() if (include_test or not s.test_only) and modality in (None, s.modality)
    )


def get_spec(name: str) -> BackboneSpec:
    """The spec of a registered backbone."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones(True))}")
    return _REGISTRY[name][0]


def backbone_status(name: str) -> tuple[bool, str]:
    """(available offline now, a sentence saying where the weights are or how to get them)."""
    spec = get_spec(name)
    why_not = _REGISTRY[name][2]()
    return (why_not is None, why_not or f"ready: {spec.weights_source}")


def create_backbone(name: str, num_classes: int | None = None, pretrained: bool = True) -> BlockNet:
    """Build a backbone with a new head of `num_classes` outputs.

    Args:
        name: a name from `list_backbones()`.
        num_classes: size of the new head; None keeps the pretrained classifier (for prediction).
        pretrained: load pretrained weights (raises `Unavailable` with what to do when they are
            missing); False gives the same architecture from random init.
    """
    spec = get_spec(name)
    if num_classes is None and not pretrained:
        raise ConfigError("num_classes=None keeps the pretrained classifier; it needs pretrained=True")
    builder = _REGISTRY[name][1]
    blocks, num_features, classifier = builder(pretrained)
    head = classifier if num_classes is None else _classifier_head(spec, num_features, num_classes)
    if head is None:
        raise ConfigError(f"{name} has no pretrained classifier; pass num_classes")
    return BlockNet(spec, blocks, head)

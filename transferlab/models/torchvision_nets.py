"""torchvision's ResNet-18 and MobileNetV3-Small: ImageNet weights from torch's cache, or downloaded when online."""

from __future__ import annotations

import urllib.error
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .._paths import torch_checkpoint_dir
from ..errors import Unavailable
from .registry import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec, register_backbone


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

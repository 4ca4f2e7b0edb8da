"""ImageNet predictions from a pretrained backbone: what the network knows before any transfer."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from ..data.folders import load_image
from ..data.transforms import to_model_input
from ..models.registry import BlockNet, create_backbone, get_spec

__all__ = ["imagenet_classes", "predict_imagenet"]


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1 000 ImageNet-1k class names, offline (torchvision ships them)."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@functools.cache
def _imagenet_model(backbone: str) -> BlockNet:
    return create_backbone(backbone, num_classes=None, pretrained=True).eval()


def as_image_tensor(image, size: int) -> torch.Tensor:
    """A path, a PIL image or an (H, W[, C]) uint8 array -> (3, size, size) uint8."""
    if isinstance(image, (str, Path)):
        return load_image(image, size)
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    import torchvision.transforms.functional as TF

    image = TF.center_crop(TF.resize(image.convert("RGB"), size), size)
    return TF.pil_to_tensor(image)


@torch.no_grad()
def predict_imagenet(
    images, backbone: str = "efficientnet_lite0", topk: int = 5, size: int | None = None
) -> list[list[tuple[str, float]]]:
    """Top-k ImageNet classes with probabilities for each image.

    Args:
        images: one image or a list (paths, PIL images or uint8 arrays).
        backbone: a backbone with ImageNet weights.
        size: input size (default: the size its weights were trained at; below 96 px the
            answers break down).
    """
    images = images if isinstance(images, list) else [images]
    spec = get_spec(backbone)
    size = size or spec.input_size
    batch = torch.stack([as_image_tensor(im, size) for im in images])
    probs = _imagenet_model(backbone)(to_model_input(batch, size, spec.mean, spec.std)).softmax(1)
    top = probs.topk(topk, dim=1)
    names = imagenet_classes()
    return [[(names[i], p) for p, i in zip(ps.tolist(), ids.tolist())] for ps, ids in zip(top.values, top.indices)]

"""Turning uint8 images into model input, in batches on tensors, never per PIL image."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment_batch", "fit_square", "model_input", "to_model_input"]


def model_input(raw: torch.Tensor, spec, size: int) -> torch.Tensor:
    """A batch of a dataset's examples -> what `spec`'s backbone takes: normalised float pixels
    for images (`to_model_input`), the token ids themselves for text (`textnet`)."""
    if spec.modality == "text":
        return raw
    return to_model_input(raw, size, spec.mean, spec.std)


def to_model_input(
    images: torch.Tensor, size: int, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float (B, 3, size, size) on the same device."""
    x = images.float().div_(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (C, H, W) of any size -> uint8 (C, size, size): the centred square, resized.

    How a photo becomes a dataset image (`folders.load_image`) and, inside an exported model, how
    an image of any size reaches the network: one function, so the two cannot drift apart.
    """
    h, w = image.shape[-2], image.shape[-1]
    if torch.jit.is_scripting():  # TorchScript export
        side = min(h, w)
    else:  # sym_min stays symbolic when the model is exported to ONNX for images of any size
        side = torch.sym_min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = image.narrow(-2, top, side).narrow(-1, left, side).unsqueeze(0).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).squeeze(0).to(torch.uint8)


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip, scale (0.85-1) and shift (up to 10%) per image, in one batched op."""
    b = x.shape[0]
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    scale = 0.85 + 0.15 * torch.rand(b, generator=generator)
    shift = (torch.rand(b, 2, generator=generator) - 0.5) * 0.2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

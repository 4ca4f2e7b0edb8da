"""Turning uint8 images into model input, in batches on tensors, never per PIL image."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment_batch", "to_model_input"]


def to_model_input(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float (B, 3, size, size) on the same device."""
    x = images.float().div_(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


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

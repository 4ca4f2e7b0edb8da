"""Device and precision: where a run trains, and which passes run in bfloat16."""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import ConfigError

__all__ = ["NUMERICS", "autocast", "bf16_passes", "channels_last", "cpu_has_bf16", "device_name", "pick_device"]

# `$TRANSFERLAB_NUMERICS` makes this CPU compute as the other kind would: "fp32" as one without
# native bfloat16, "bf16" as one with it (slower where emulated, the same rounding). Lessons and
# tests must hold under both; unset, each CPU uses what it is fast at.
NUMERICS = "TRANSFERLAB_NUMERICS"


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; otherwise the device named (checked to exist)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but is not available; use --device auto or cpu")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"CPU ({torch.get_num_threads()} threads)"
    return device.type.upper()


def bf16_passes(device: torch.device, precision: str = "auto") -> tuple[bool, bool]:
    """(training, no-gradient passes): which run under bfloat16 autocast on `device`.

    CUDA: both (tensor cores, half the activation memory). A CPU with native bf16 (AVX512-BF16
    or AMX): only the frozen prefix and evaluation, measured 1.5-1.7x faster here; bf16
    training was 2x slower on the same CPU, so it stays float32.
    `$TRANSFERLAB_NUMERICS` ("fp32" or "bf16") overrides what a CPU has, for "auto" only.
    """
    if precision == "fp32":
        return False, False
    if device.type == "cuda":
        return True, True
    if device.type == "cpu":
        return False, cpu_has_bf16()
    return False, False


def cpu_has_bf16() -> bool:
    """Whether this CPU's no-gradient passes run in bfloat16: native bf16 (AVX512-BF16 or AMX),
    unless `$TRANSFERLAB_NUMERICS` says to compute as the other kind of CPU does."""
    forced = os.environ.get(NUMERICS, "").strip().lower()
    if forced in ("fp32", "bf16"):
        return forced == "bf16"
    if forced:
        raise ConfigError(f"${NUMERICS} must be fp32 or bf16 (or unset), got {forced!r}")
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast on `device` when `bf16`, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """channels_last suits oneDNN's CPU convolutions as well as cuDNN's: measured here, 1.5x
    faster training at k = 0 and 2x for the suffix at k = 4 (EfficientNet-Lite0, 64 px)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

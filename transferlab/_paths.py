"""Where transferlab keeps what it downloads or unpacks (infrastructure, not public API)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Root of the dataset cache: `$TRANSFERLAB_DATA`, else `data/cache` in the project."""
    return Path(os.environ.get("TRANSFERLAB_DATA", PROJECT_ROOT / "data" / "cache"))


def shipped_dir() -> Path:
    """Small files committed with the project (labnet weights)."""
    return PROJECT_ROOT / "data"


def torch_checkpoint_dir() -> Path:
    """torch's own weight cache (`$TORCH_HOME/hub/checkpoints`), shared with torchvision and timm."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"

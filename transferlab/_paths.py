"""Where transferlab keeps what it downloads or unpacks, and how it writes a file whole
(infrastructure, not public API)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the clone (or, installed, site-packages)


def in_clone() -> bool:
    """Whether this is a clone of the project (run from it, or installed from it in editable mode)."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "transferlab").is_dir()


def data_dir() -> Path:
    """Root of the dataset cache: `$TRANSFERLAB_DATA`; else `data/cache` in a clone, or the user's
    cache folder (`~/.cache/transferlab`) for an installed package."""
    if given := os.environ.get("TRANSFERLAB_DATA"):
        return Path(given)
    if in_clone():
        return PROJECT_ROOT / "data" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transferlab"


def shipped_dir() -> Path:
    """Small files shipped inside the package (labnet's weights)."""
    return Path(__file__).resolve().parent / "models" / "weights"


def torch_checkpoint_dir() -> Path:
    """torch's own weight cache (`$TORCH_HOME/hub/checkpoints`), shared with torchvision and timm."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to, renamed onto `path` when the block ends
    without an error and removed otherwise: a reader sees the old file or the whole new one,
    never half of one, and a failed write leaves nothing behind.

        with atomic_path(target) as tmp:
            torch.save(payload, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # unique: writers never share one
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

"""The frozen prefix is a fixed function: compute its output once, train only the rest.

With freeze depth k, blocks 1..k never change during a run (no gradients, BatchNorm in eval
mode), so their output for a given image never changes either. `FeatureCache` keeps those
block-k activations, keyed by everything they depend on: the prefix's weights, k, the images
(dataset, subset), the input size, the augmented views and the device. The cache is shared by
all runs in a process (the dashboard's repeated runs hit it), bounded in bytes, and evicts the
least recently used entry. A run whose features would not fit in the whole budget does not
compute them at all: it runs the prefix every batch instead (`Run._features_fit`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import torch

from .backbones import BlockNet

__all__ = ["FeatureCache", "feature_cache", "prefix_fingerprint"]

DEFAULT_CACHE_MB = 1024


class FeatureCache:
    """A thread-safe LRU cache of tensors, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._entries.values())

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            tensor = self._entries.get(key)
            if tensor is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return tensor

    def put(self, key: str, tensor: torch.Tensor) -> bool:
        """Store `tensor` unless it alone exceeds the budget; returns whether it was stored."""
        size = tensor.numel() * tensor.element_size()
        if size > self.max_bytes:
            return False
        with self._lock:
            self._entries[key] = tensor
            self._entries.move_to_end(key)
            while self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)
        return True

    def get_or_compute(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        tensor = self.get(key)
        if tensor is None:
            self.misses += 1
            tensor = compute()
            self.put(key, tensor)
        return tensor

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


_CACHE = FeatureCache(int(os.environ.get("TRANSFERLAB_CACHE_MB", DEFAULT_CACHE_MB)) * 2**20)


def feature_cache() -> FeatureCache:
    """The process-wide cache of frozen-prefix features."""
    return _CACHE


def prefix_fingerprint(model: BlockNet, k: int) -> str:
    """A hash of the first k blocks' weights and buffers: the cache key's 'which function'."""
    h = hashlib.sha1(f"{model.spec.name}:{k}".encode())
    for block in list(model.blocks.values())[:k]:
        for name, tensor in block.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]

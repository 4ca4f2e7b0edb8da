"""The frozen prefix is a fixed function: compute its output once, train only the rest.

With freeze depth k, blocks 1..k never change during a run (no gradients, BatchNorm in eval
mode), so their output for a given image never changes either. `FeatureCache` keeps those
block-k activations, keyed by everything they depend on: the prefix's weights, k, the images
(dataset, subset), the input size, the augmented views and the device. The cache is shared by
all runs in a process (the dashboard's repeated runs hit it), bounded in bytes, and evicts the
least recently used entry. A run whose features would not fit in the whole budget does not
compute them at all: it runs the prefix every batch instead.

`Inputs` is a run's side of this: uint8 images in, block-k activations out, from the cache when
the prefix is a fixed function and the features fit, through the prefix every batch otherwise.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import torch

from ..data.transforms import augment_batch, model_input
from ..device import autocast, channels_last
from ..models.registry import BlockNet
from .config import ExperimentConfig
from .splits import ExperimentData

__all__ = ["EVAL_BATCH", "FeatureCache", "Inputs", "feature_cache", "prefix_fingerprint"]

# Batch size for the frozen prefix and for evaluation: no gradients, so larger than training
# batches, but small enough that activations stay well under the 2 GB the default run may use.
EVAL_BATCH = 128

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


class Inputs:
    """A run's model inputs: uint8 images of a split -> block-k activations (images when k = 0).

    Features are cached when the prefix is a fixed function (k > 0, BatchNorm frozen) and every
    split's features fit in the cache's budget. Keys hold what decides them: the prefix's
    weights, the split's images, the input size, the device and precision, and for augmented
    training views the seed and the number of views. The test split's key does not depend on
    the training subset or the seed, so a sweep computes it once.
    """

    def __init__(self, model: BlockNet, k: int, data: ExperimentData, config: ExperimentConfig, bf16: bool):
        self.model, self.k, self.data, self.bf16 = model, k, data, bf16
        self.size = config.size
        self.augment, self.seed = config.augment, config.seed
        self.views = config.augment_views if config.augment else 1
        self.augment_rng = torch.Generator().manual_seed(config.seed + 1)
        self.device = data.train_images.device
        self.check_stop: Callable[[], None] = lambda: None  # a run sets it: Stop during long caching
        self.cached = config.cache_features and k > 0 and config.freeze_bn_stats and self._fits()
        self._fingerprint: str | None = None

    @torch.no_grad()
    def prefix(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """uint8 images (or token ids) -> block-k activations, through the frozen prefix now."""
        x = model_input(images, self.model.spec, self.size)
        if augment:
            x = augment_batch(x, self.augment_rng)
        with autocast(self.device, self.bf16):
            return self.model.forward_blocks(channels_last(x), 0, self.k)

    def _prefix_all(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = []
            for i in range(0, len(images), EVAL_BATCH):
                self.check_stop()
                chunks.append(self.prefix(images[i : i + EVAL_BATCH], augment))
            return torch.cat(chunks)
        finally:
            self.model.train(was_training)

    def _fits(self) -> bool:
        """Whether every split's features fit in the cache's budget (all 60 000 Fashion-MNIST
        training images at k = 1 would take 4 GB in bf16: those run the prefix every batch)."""
        d = self.data
        one = self.prefix(d.train_images[:1])  # frozen blocks are in eval mode: nothing changes
        images = len(d.train_labels) * self.views + len(d.val_labels) + len(d.test_labels)
        return images * one.numel() * one.element_size() <= feature_cache().max_bytes

    def features(self, split: str) -> torch.Tensor:
        """The cached features of a split; "train" with augmentation is (views, N, ...)."""
        if self._fingerprint is None:  # hashing the prefix's weights once: they never change
            self._fingerprint = prefix_fingerprint(self.model, self.k)
        images = getattr(self.data, f"{split}_images")
        augmented = split == "train" and self.augment
        variant = f"augmented x{self.views} seed {self.seed}" if augmented else "plain"
        key = "|".join(map(str, (self._fingerprint, self.data.keys[split], variant, self.size, self.device, self.bf16)))

        def compute():
            if augmented:
                return torch.stack([self._prefix_all(images, augment=True) for _ in range(self.views)])
            return self._prefix_all(images)

        return feature_cache().get_or_compute(key, compute)

    def train_batches(
        self, sizes: Sequence[int], shuffle: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches of `sizes` forever: every training image once per epoch,
        in a new order each epoch drawn from `shuffle`."""
        labels, epoch = self.data.train_labels, 0
        while True:
            order = torch.randperm(len(labels), generator=shuffle).to(self.device)
            for rows in torch.split(order, list(sizes)):
                yield self.train_batch(rows, epoch), labels[rows]
            epoch += 1

    def train_batch(self, rows: torch.Tensor, epoch: int) -> torch.Tensor:
        """The inputs for training images `rows` in `epoch` (0-based), float32 for training."""
        if self.cached:
            feats = self.features("train")
            x = feats[epoch % self.views][rows] if self.augment else feats[rows]
        else:
            x = self.prefix(self.data.train_images[rows], augment=self.augment)
        return channels_last(x.float() if x.is_floating_point() else x)  # bf16 features, fp32 training; token ids stay

    def eval_batches(self, split: str) -> Iterator[torch.Tensor]:
        """A split's inputs in chunks of `EVAL_BATCH`, in order (the training images unaugmented)."""
        feats = self.features(split) if self.cached and not (split == "train" and self.augment) else None
        images = getattr(self.data, f"{split}_images")
        for i in range(0, len(images), EVAL_BATCH):
            self.check_stop()
            x = feats[i : i + EVAL_BATCH] if feats is not None else self.prefix(images[i : i + EVAL_BATCH])
            yield channels_last(x)

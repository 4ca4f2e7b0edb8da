"""Training: an `ExperimentConfig` becomes runs, and runs emit records to callbacks.

A **run** trains one **arm** once: `finetune` (pretrained weights, freeze depth k), `scratch`
(same architecture, random init, everything trained) or `probe` (pretrained, every block frozen).
The loop does nothing but train and emit typed `Record`s; the history, the tqdm bar, the
command line's printer, the dashboard's live chart are all callbacks. A callback raising
`StopTraining` (or a set `stop` event) ends training after the current batch.

`compare()` steps its runs one epoch at a time in turn, so both arms advance together.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F

from .backbones import BlockNet, create_backbone, get_spec
from .datasets import ImageDataset, augment_batch, load_dataset, select_classes, stratified_indices, to_model_input
from .errors import ConfigError, StopTraining, TrainingDiverged
from .features import feature_cache, prefix_fingerprint
from .freezing import freeze_to

__all__ = [
    "ARMS",
    "Arm",
    "Callback",
    "ComparisonResult",
    "ExperimentConfig",
    "ExperimentData",
    "History",
    "Record",
    "Run",
    "bf16_passes",
    "check_work",
    "compare",
    "pick_device",
    "prepare_data",
    "pretrain",
]


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides an experiment's numbers; `asdict()` gives table rows and keys.

    Attributes:
        dataset, backbone: registry names.
        per_class: training images per class (None: all), drawn stratified from `seed`.
        freeze_depth: k; the first k blocks are frozen in the `finetune` arm.
        epochs, lr, batch_size, weight_decay: optimisation (AdamW, cosine decay to zero).
        head_lr_mult: the head's learning rate is `lr * head_lr_mult`.
        image_size: input size in pixels (None: the backbone's CPU-friendly default).
        augment: random flips, scales and shifts on tensors; with a frozen prefix, features of
            `augment_views` augmented copies of the training images are cached and cycled.
        test_per_class: size of the fixed test split per class (None: the whole test set).
        eval_per_class: per-epoch curves use this fixed part of the test split (None: all of it).
        classes: use only these class indices of the dataset (relabelled in this order).
        root: folder for the `image_folder` dataset.
        freeze_bn_stats: keep BatchNorm in frozen blocks in eval mode (True is correct).
        cache_features: compute the frozen prefix once instead of every batch.
        precision: "auto" runs in bfloat16 where the hardware is fast at it (everything on CUDA;
            on CPUs with native bf16, only the no-gradient passes: the frozen prefix and
            evaluation), float32 elsewhere; "fp32" runs float32 everywhere, for numbers that
            do not depend on the processor.
        device: "auto" (cuda, then mps, then cpu) or a torch device string.
    """

    dataset: str = "fashion_mnist"
    backbone: str = "efficientnet_lite0"
    per_class: int | None = 10
    freeze_depth: int = 4
    epochs: int = 15
    lr: float = 1e-3
    head_lr_mult: float = 1.0
    batch_size: int = 32
    weight_decay: float = 1e-4
    image_size: int | None = None
    augment: bool = False
    augment_views: int = 4
    seed: int = 0
    test_per_class: int | None = 200
    eval_per_class: int | None = 50
    classes: tuple[int, ...] | None = None
    root: str | None = None
    freeze_bn_stats: bool = True
    cache_features: bool = True
    precision: str = "auto"
    device: str = "auto"

    @property
    def size(self) -> int:
        return self.image_size or get_spec(self.backbone).train_size

    def validate(self) -> None:
        """Raise `ConfigError` with what to change, before any work is done."""
        spec = get_spec(self.backbone)
        checks = [
            (self.per_class is None or self.per_class >= 1, "per_class must be at least 1 (or None for all)"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.size >= 16, "image_size must be at least 16 pixels"),
            (self.augment_views >= 1, "augment_views must be at least 1"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (
                0 <= self.freeze_depth <= spec.num_blocks,
                f"freeze_depth must be 0..{spec.num_blocks} for {spec.name} ({', '.join(spec.blocks)})",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass(frozen=True)
class Arm:
    """One side of a comparison.

    Attributes:
        name: the arm's label in records and tables.
        init: "pretrained", "random", or a state dict of the backbone's blocks (e.g. weights
            pretrained on a source task, for Yosinski-style arms).
        freeze: "config" (the config's freeze depth), "none", "all", or a depth.
        lr_mult: scales the config's learning rate for the blocks (not the head).
    """

    name: str
    init: str | Mapping = "pretrained"
    freeze: str | int = "config"
    lr_mult: float = 1.0

    def depth(self, config: ExperimentConfig) -> int:
        n = get_spec(config.backbone).num_blocks
        return {"config": config.freeze_depth, "none": 0, "all": n}.get(self.freeze, self.freeze)


ARMS = {
    "finetune": Arm("finetune", "pretrained", "config"),
    "scratch": Arm("scratch", "random", "none"),
    "probe": Arm("probe", "pretrained", "all"),
}


@dataclass(frozen=True)
class Record:
    """One measurement. `split` is "train" (running mean over the epoch's batches), "eval"
    (the fixed per-epoch part of the test split) or "test" (the whole test split, at the end)."""

    arm: str
    epoch: int
    step: int
    split: str
    loss: float
    accuracy: float
    images_seen: int
    seconds: float


class Callback:
    """Subscribe to a run's events; override what you need. Raise `StopTraining` to stop."""

    def on_run_start(self, run: Run) -> None: ...

    def on_batch_end(self, run: Run) -> None: ...

    def check_stop(self, run: Run) -> None:
        """Called between batches and also during long set-up (caching features): raise to stop."""

    def on_record(self, run: Run, record: Record) -> None: ...

    def on_run_end(self, run: Run) -> None: ...


class History(Callback):
    """Collects every record; `frame()` gives the tidy table the plots take."""

    def __init__(self):
        self.records: list[Record] = []

    def on_record(self, run: Run, record: Record) -> None:
        self.records.append(record)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.records], columns=list(Record.__dataclass_fields__))


class StopOnEvent(Callback):
    """Stop within one batch of `event` being set (a dashboard's Stop button, Ctrl-C)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def check_stop(self, run: Run) -> None:
        if self.event.is_set():
            raise StopTraining("stop requested")

    on_batch_end = check_stop


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


PRECISIONS = ("auto", "fp32")


def bf16_passes(device: torch.device, precision: str = "auto") -> tuple[bool, bool]:
    """(training, no-gradient passes): which run under bfloat16 autocast on `device`.

    CUDA: both (tensor cores, half the activation memory). A CPU with native bf16 (AVX512-BF16
    or AMX): only the frozen prefix and evaluation, measured 1.5-1.7x faster here; bf16
    training was 2x slower on the same CPU, so it stays float32.
    """
    if precision == "fp32":
        return False, False
    if device.type == "cuda":
        return True, True
    if device.type == "cpu":
        return False, torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False, False


# --- data ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ExperimentData:
    """The images one experiment uses, as uint8 tensors on the device.

    `eval_rows` picks the per-epoch evaluation images out of the test split; `key` names the
    images (dataset and subsets) for the feature cache.
    """

    dataset: ImageDataset
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    eval_rows: torch.Tensor
    key: str


def prepare_data(config: ExperimentConfig, device: torch.device | None = None) -> ExperimentData:
    """Load the dataset, draw the training subset and the fixed test split, move to `device`."""
    device = device or pick_device(config.device)
    ds = load_dataset(config.dataset, root=config.root)
    if config.classes is not None:
        ds = select_classes(ds, config.classes)
    train = stratified_indices(ds.train_labels, config.per_class, config.seed)
    # The test split never depends on the seed or on n; per-epoch evaluation takes the first
    # eval_per_class of each class in the same order, so it is a fixed part of the test split.
    test = stratified_indices(ds.test_labels, _cap(ds.test_labels, config.test_per_class), seed=0)
    test_labels = ds.test_labels[test]
    eval_rows = stratified_indices(test_labels, _cap(test_labels, config.eval_per_class), seed=0)
    digest = hashlib.sha1(train.numpy().tobytes() + test.numpy().tobytes()).hexdigest()[:12]
    return ExperimentData(
        dataset=ds,
        train_images=ds.train_images[train].to(device),
        train_labels=ds.train_labels[train].to(device),
        test_images=ds.test_images[test].to(device),
        test_labels=test_labels.to(device),
        eval_rows=eval_rows.to(device),
        key=f"{ds.name}:{config.root}:{digest}",
    )


def _cap(labels: torch.Tensor, per_class: int | None) -> int | None:
    """per_class, or None (all) when a class has fewer images than that."""
    if per_class is None:
        return None
    return per_class if int(torch.bincount(labels).min()) >= per_class else None


# Batch size for the frozen prefix and for evaluation: no gradients, so larger than training
# batches, but small enough that activations stay well under the 2 GB the default run may use.
EVAL_BATCH = 128


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


# --- one run ---------------------------------------------------------------------------------


class Run:
    """One arm trained once. Iterate `epochs()` to train; each step yields after an epoch."""

    def __init__(
        self,
        config: ExperimentConfig,
        arm: Arm,
        data: ExperimentData,
        device: torch.device,
        callbacks: Sequence[Callback] = (),
    ):
        self.config, self.arm, self.data, self.device = config, arm, data, device
        self.callbacks = list(callbacks)
        self.k = arm.depth(config)
        self.model = self._build_model()
        self.summary = freeze_to(self.model, self.k, config.freeze_bn_stats)
        self.bf16_train, self.bf16_infer = bf16_passes(device, config.precision)
        # channels_last suits oneDNN's CPU convolutions as well as cuDNN's: measured here,
        # 1.5x faster training at k = 0 and 2x for the suffix at k = 4 (EfficientNet-Lite0, 64 px).
        self.model.to(memory_format=torch.channels_last)
        spec = self.model.spec
        self.mean, self.std, self.size = spec.mean, spec.std, config.size
        n = len(data.train_labels)
        self.batches_per_epoch = n // config.batch_size if n > config.batch_size else 1
        self.total_steps = self.batches_per_epoch * config.epochs
        self.optimizer = self._build_optimizer()
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.augment_rng = torch.Generator().manual_seed(config.seed + 1)
        # Caching is only correct when the prefix is a fixed function: BatchNorm frozen too.
        self.cached = config.cache_features and self.k > 0 and config.freeze_bn_stats and self._features_fit()
        self.fingerprint: str | None = None
        self.epoch = self.step = self.images_seen = 0
        self.seconds = 0.0
        self.test_predictions: torch.Tensor | None = None
        self.test_accuracy = self.test_loss = float("nan")

    @property
    def trainable_params(self) -> int:
        return int(self.summary.loc[self.summary.trainable, "parameters"].sum())

    @property
    def total_params(self) -> int:
        return int(self.summary.parameters.sum())

    def _build_model(self) -> BlockNet:
        num_classes = self.data.dataset.num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)  # the head (and scratch weights) from the seed
            if isinstance(self.arm.init, Mapping):
                model = create_backbone(self.config.backbone, num_classes, pretrained=False)
                model.blocks.load_state_dict(self.arm.init, strict=True)
            else:
                model = create_backbone(self.config.backbone, num_classes, self.arm.init == "pretrained")
        return model.to(self.device)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        body = [p for b in list(self.model.blocks.values())[self.k :] for p in b.parameters()]
        groups = [{"params": list(self.model.head.parameters()), "lr": cfg.lr * cfg.head_lr_mult}]
        if body:
            groups.append({"params": body, "lr": cfg.lr * self.arm.lr_mult})
        # The fused kernel updates every tensor in one pass: 3.5x faster optimiser steps than the
        # default per-tensor loop on the CPU (measured at k = 4: the suffix has 3.3 M parameters).
        fused = True if self.device.type in ("cpu", "cuda") else None
        optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, fused=fused)
        # Cosine decay to zero over the whole run: constant rates made small runs collapse.
        total = max(1, self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
        return optimizer

    # -- inputs: cached block-k features, or images through the frozen prefix every batch --

    def _autocast(self, training: bool):
        if not (self.bf16_train if training else self.bf16_infer):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @torch.no_grad()
    def _prefix(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """uint8 images -> block-k activations (the model's input when k = 0)."""
        x = to_model_input(images, self.size, self.mean, self.std)
        if augment:
            x = augment_batch(x, self.augment_rng)
        with self._autocast(training=False):
            return self.model.forward_blocks(_channels_last(x), 0, self.k)

    def _prefix_all(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        chunks = []
        for i in range(0, len(images), EVAL_BATCH):
            self._check_stop()  # caching all images can take a while: a Stop must not wait for it
            chunks.append(self._prefix(images[i : i + EVAL_BATCH], augment))
        self.model.train(was_training)
        return torch.cat(chunks)

    def _check_stop(self) -> None:
        for cb in self.callbacks:
            cb.check_stop(self)

    def release(self) -> None:
        """Drop the network and optimiser (keeping tables, history and predictions) to free memory."""
        self.model = self.optimizer = self.scheduler = None

    def _features_fit(self) -> bool:
        """Whether this run's block-k features (every training view and test image) fit in the
        feature cache's budget. When they do not, the prefix runs every batch instead, so memory
        stays bounded (all 60 000 Fashion-MNIST training images at k = 1 would take 4 GB in bf16)."""
        data, cfg = self.data, self.config
        one = self._prefix(data.train_images[:1])  # frozen blocks are in eval mode: nothing changes
        views = cfg.augment_views if cfg.augment else 1
        images = len(data.train_labels) * views + len(data.test_labels)
        return images * one.numel() * one.element_size() <= feature_cache().max_bytes

    def _cached(self, name: str, images: torch.Tensor, views: int = 1) -> torch.Tensor:
        if self.fingerprint is None:  # hashing the prefix's weights once: they never change
            self.fingerprint = prefix_fingerprint(self.model, self.k)
        seed = self.config.seed
        parts = (self.fingerprint, self.data.key, name, self.size, views, seed, self.device, self.bf16_infer)
        key = "|".join(map(str, parts))

        def compute():
            if views == 1:
                return self._prefix_all(images)
            return torch.stack([self._prefix_all(images, augment=True) for _ in range(views)])

        return feature_cache().get_or_compute(key, compute)

    def _train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data, cfg = self.data, self.config
        order = torch.randperm(len(data.train_labels), generator=self.shuffle).to(self.device)
        if self.cached:
            views = cfg.augment_views if cfg.augment else 1
            feats = self._cached("train", data.train_images, views)
            feats = feats[self.epoch % views] if cfg.augment else feats
        for b in range(self.batches_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = feats[idx] if self.cached else self._prefix(data.train_images[idx], augment=cfg.augment)
            yield _channels_last(x.float()), data.train_labels[idx]  # bf16 features, fp32 training

    # -- the loop --

    def _emit(self, split: str, loss: float, accuracy: float) -> None:
        record = Record(
            self.arm.name,
            self.epoch,
            self.step,
            split,
            float(loss),
            float(accuracy),
            self.images_seen,
            round(self.seconds, 4),
        )
        for cb in self.callbacks:
            cb.on_record(self, record)

    @torch.no_grad()
    def evaluate(self, rows: torch.Tensor | None = None) -> tuple[float, float, torch.Tensor]:
        """(mean loss, accuracy, predictions) on the test split, or on its `rows`."""
        data = self.data
        self.model.eval()
        if self.cached:
            feats = self._cached("test", data.test_images)
            feats = feats if rows is None else feats[rows]
        images = data.test_images if rows is None else data.test_images[rows]
        labels = data.test_labels if rows is None else data.test_labels[rows]
        losses, preds, bs = [], [], EVAL_BATCH
        for i in range(0, len(labels), bs):
            self._check_stop()
            x = feats[i : i + bs] if self.cached else self._prefix(images[i : i + bs])
            with self._autocast(training=False):
                logits = self.model(_channels_last(x), start=self.k).float()
            losses.append(F.cross_entropy(logits, labels[i : i + bs], reduction="sum"))
            preds.append(logits.argmax(1))
        self.model.train()
        preds = torch.cat(preds)
        return (torch.stack(losses).sum() / len(labels)).item(), (preds == labels).float().mean().item(), preds

    def epochs(self) -> Iterator[int]:
        """Train epoch by epoch, yielding the epoch number after each; test at the end.

        `seconds` counts only this run's own work, so interleaved runs are timed fairly.
        """
        started = time.perf_counter()
        for cb in self.callbacks:
            cb.on_run_start(self)
        self._check_stop()
        self.model.train()
        for epoch in range(1, self.config.epochs + 1):
            self.epoch = epoch
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device)
            first_bad = torch.full((), -1, device=self.device)  # the first step whose loss was NaN or inf
            seen = 0
            for x, y in self._train_batches():
                with self._autocast(training=True):
                    logits = self.model(x, start=self.k)
                loss = F.cross_entropy(logits.float(), y)
                # Kept on the device and read once an epoch: no host synchronisation per step.
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), self.step + 1, first_bad)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                # Accumulate on the device: no host synchronisation inside the epoch.
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
                self.step += 1
                self.images_seen += len(y)
                for cb in self.callbacks:
                    cb.on_batch_end(self)
            self.seconds += time.perf_counter() - started
            started = time.perf_counter()
            if first_bad.item() >= 0:
                raise self._diverged(int(first_bad.item()))
            self._emit("train", loss_sum.item() / seen, correct.item() / seen)
            loss, acc, _ = self.evaluate(self.data.eval_rows)
            self.seconds += time.perf_counter() - started
            self._emit("eval", loss, acc)
            yield self.epoch
            started = time.perf_counter()
        self.test_loss, self.test_accuracy, self.test_predictions = self.evaluate()
        self.seconds += time.perf_counter() - started
        self._emit("test", self.test_loss, self.test_accuracy)
        for cb in self.callbacks:
            cb.on_run_end(self)

    def _diverged(self, step: int) -> TrainingDiverged:
        cfg = self.config
        head = f" or the head's multiplier (now x{cfg.head_lr_mult:g})" if cfg.head_lr_mult > 1 else ""
        return TrainingDiverged(
            f"The {self.arm.name} arm's training loss became NaN or infinite at step {step} of "
            f"{self.total_steps} (epoch {self.epoch}), so the run was stopped. "
            f"Lower the learning rate (now {cfg.lr * self.arm.lr_mult:g}){head} and run it again."
        )

    def row(self) -> dict:
        """This run's line in a result table."""
        cfg = self.config
        return {
            "arm": self.arm.name,
            "backbone": cfg.backbone,
            "dataset": cfg.dataset,
            "per_class": cfg.per_class,
            "freeze_depth": self.k,
            "image_size": self.size,
            "seed": cfg.seed,
            "epochs": self.epoch,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "seconds": round(self.seconds, 2),
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "cached_features": self.cached,
            "bf16": "all" if self.bf16_train else "prefix+eval" if self.bf16_infer else "no",
            "device": device_name(self.device),
        }


# --- comparing arms --------------------------------------------------------------------------


class Verdicts:
    """What a result with a `table` (a row per arm) and a `stopped` flag says: shared by
    `ComparisonResult` and the plain-data `Outcome`."""

    table: pd.DataFrame
    stopped: bool

    def accuracy(self, arm: str) -> float:
        return float(self.table.set_index("arm").loc[arm, "test_accuracy"])

    @property
    def gap(self) -> float:
        """Test accuracy of `finetune` minus `scratch` (what the transfer map plots)."""
        return self.accuracy("finetune") - self.accuracy("scratch")

    def verdict(self) -> str:
        """One sentence: who won, by how much, in how long."""
        if self.stopped:
            return "Stopped before the end: no verdict."
        t = self.table.sort_values("test_accuracy", ascending=False).reset_index(drop=True)
        if len(t) == 1:
            return f"{t.arm[0]}: test accuracy {t.test_accuracy[0]:.1%} in {t.seconds[0]:.0f} s."
        a, b = t.iloc[0], t.iloc[1]
        return (
            f"{a.arm} wins: {a.test_accuracy:.1%} vs {b.arm} {b.test_accuracy:.1%} "
            f"(+{(a.test_accuracy - b.test_accuracy) * 100:.1f} points), "
            f"{a.seconds:.0f} s vs {b.seconds:.0f} s."
        )


@dataclass
class ComparisonResult(Verdicts):
    """What `compare()` returns: a tidy table (a row per arm), every record, and the runs."""

    config: ExperimentConfig
    table: pd.DataFrame
    history: pd.DataFrame
    runs: dict[str, Run] = field(repr=False)
    data: ExperimentData = field(repr=False)
    stopped: bool = False


def compare(
    config: ExperimentConfig,
    arms: Sequence[str | Arm] = ("finetune", "scratch"),
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
    max_work: int | None = None,
) -> ComparisonResult:
    """Train several arms on the same data, interleaved epoch by epoch.

    Args:
        config: the experiment.
        arms: names from `ARMS` or `Arm`s.
        callbacks: sinks for the records (progress bars, printers, live charts).
        stop: set it from another thread to stop within one batch.
        max_work: refuse (before training) a run of more training images x epochs per arm than this.

    Returns:
        A `ComparisonResult`; `stopped` is True when a stop request or callback ended it early.
    """
    config.validate()
    unknown = [a for a in arms if isinstance(a, str) and a not in ARMS]
    if unknown:
        raise ConfigError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    arms = [ARMS[a] if isinstance(a, str) else a for a in arms]
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ConfigError(f"arm names must differ: {names}")
    device = pick_device(config.device)
    data = prepare_data(config, device)
    check_work(config, len(data.train_labels), data.dataset.num_classes, max_work)
    history = History()
    sinks = [history, *callbacks] + ([StopOnEvent(stop)] if stop is not None else [])
    runs = {a.name: Run(config, a, data, device, sinks) for a in arms}
    pending = [run.epochs() for run in runs.values()]
    stopped = False
    try:
        while pending:
            for it in list(pending):
                if next(it, None) is None:
                    pending.remove(it)
    except StopTraining:
        stopped = True
    table = pd.DataFrame([run.row() for run in runs.values()])
    return ComparisonResult(config, table, history.frame(), runs, data, stopped)


def check_work(config: ExperimentConfig, train_images: int, num_classes: int, max_work: int | None) -> None:
    """Raise `ConfigError` saying what to change when one arm would train more than `max_work`
    images x epochs (a server's cap, so that one job cannot hold the device for everyone)."""
    work = train_images * config.epochs
    if max_work is None or work <= max_work:
        return
    per_class = max(1, max_work // (config.epochs * num_classes))
    epochs = max(1, max_work // train_images)
    raise ConfigError(
        f"This comparison trains {train_images:,} images x {config.epochs} epochs = {work:,} images per arm; "
        f"this server allows {max_work:,}. Choose at most {per_class:,} images per class, "
        f"or at most {epochs} epoch{'s' if epochs > 1 else ''}."
    )


def pretrain(config: ExperimentConfig, callbacks: Sequence[Callback] = ()) -> tuple[dict, ComparisonResult]:
    """Train the backbone from random init on a source task; return its blocks' weights.

    The weights plug into `Arm(init=weights)` for transfer experiments whose source task you
    chose yourself (labnet's shipped weights are made this way by scripts/pretrain_labnet.py).
    """
    result = compare(config, arms=[Arm("source", "random", "none")], callbacks=callbacks)
    state = {k: v.detach().cpu().clone() for k, v in result.runs["source"].model.blocks.state_dict().items()}
    return state, result

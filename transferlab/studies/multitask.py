"""Multitask learning: one network with a head per task, trained on several related tasks at once.

    result = compare_multitask(
        ExperimentConfig(per_class=10, freeze_depth=4),
        tasks={"tops": {"classes": (0, 2, 3, 4, 6)}, "the rest": {"classes": (1, 5, 7, 8, 9)}},
        seeds=(0, 1),
    )
    result.table     # a row per task, setting ("alone" / "together") and seed: test_accuracy, ...
    result.gains()   # a row per task: together minus alone, mean and range over seeds

Each task is the config with a few data settings changed (its classes, its dataset, its label
noise), so it has its own splits from `prepare_data`. The network is the config's pretrained
backbone, frozen up to the freeze depth as usual, whose `head` holds one new head per task. Each
step takes one batch of every task, runs them through the shared blocks as one batch, and adds
the heads' cross-entropies (weighted). Everything else is the engine's: `MultitaskRun` is a `Run`
with more heads, so the loop, the callbacks (Stop, progress bars, records), patience, the frozen
prefix's cached features (`Inputs`), `freeze_to` and `build_optimizer`'s AdamW with cosine decay
are `Run`'s own.

A task trained alone is the same loop with one task, and that is exactly an ordinary `finetune`
run: the same weights after training and the same test accuracy (tests/test_multitask.py checks
it). Together, a task's shared blocks also get the other tasks' gradients, and their trained
BatchNorm layers see the other tasks' images in every batch. The budget is the same number of
steps, each with one batch of *every* task: a task sees as many of its own images together as
alone, and the shared blocks see the others' as well. With every block frozen (a linear probe)
nothing is shared that trains, so together equals alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..device import autocast, bf16_passes, channels_last, pick_device
from ..errors import ConfigError
from ..models.freezing import freeze_to, weight_snapshot
from ..models.registry import BlockNet
from ..training.callbacks import Callback, Record
from ..training.config import ARMS, ExperimentConfig, plan
from ..training.features import Inputs
from ..training.run import RandomState, Run, build_model, build_optimizer
from ..training.splits import prepare_data

__all__ = ["MultitaskResult", "MultitaskRun", "TASK_SETTINGS", "compare_multitask", "task_configs", "train_tasks"]

# What a task may change in the shared config; everything else (the backbone, the freeze depth,
# the budget, the learning rate, the image size, the seed) is shared by all tasks.
TASK_SETTINGS = ("dataset", "classes", "label_noise", "per_class", "root")


@dataclass
class MultitaskResult:
    """What `compare_multitask` returns.

    Attributes:
        table: a row per task, setting ("alone" or "together") and seed: trained_with (the other
            tasks in the run, "" alone), per_class, freeze_depth, steps, val_accuracy,
            test_accuracy, seconds (the whole run's).
        history: validation loss and accuracy per task during training (task, setting, seed,
            step, split, loss, accuracy).
    """

    table: pd.DataFrame
    history: pd.DataFrame

    def gains(self) -> pd.DataFrame:
        """A row per task: mean test accuracy alone and together, and together minus alone
        (the gain) seed by seed: its mean, min and max over seeds."""
        acc = self.table.pivot_table(index=["task", "seed"], columns="setting", values="test_accuracy")
        acc["gain"] = acc.together - acc.alone
        out = acc.groupby("task", sort=False).agg(
            alone=("alone", "mean"),
            together=("together", "mean"),
            gain=("gain", "mean"),
            gain_min=("gain", "min"),
            gain_max=("gain", "max"),
        )
        return out.reindex(self.table.task.unique())


def task_configs(config: ExperimentConfig, tasks: Mapping[str, Mapping]) -> dict[str, ExperimentConfig]:
    """Each task's config: `config` with the task's data settings (see `TASK_SETTINGS`)."""
    configs = {}
    for name, settings in tasks.items():
        if not isinstance(settings, Mapping):
            raise ConfigError(f"task {name!r}: give its settings as a dict, e.g. {{'classes': (0, 1, 2)}}")
        other = sorted(set(settings) - set(TASK_SETTINGS))
        if other:
            raise ConfigError(
                f"task {name!r} sets {', '.join(other)}; a task may set only {', '.join(TASK_SETTINGS)}. "
                "Set shared settings (backbone, freeze depth, steps, lr, image size) in the config."
            )
        if "classes" in settings and settings["classes"] is not None:
            settings = {**settings, "classes": tuple(settings["classes"])}
        configs[name] = replace(config, **settings)
        configs[name].validate()
    return configs


def check_weights(tasks: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    """One non-negative loss weight per task, not all zero (default 1 each)."""
    if weights is None:
        return {t: 1.0 for t in tasks}
    if set(weights) != set(tasks) or min(weights.values()) < 0 or not any(weights.values()):
        raise ConfigError(f"give one non-negative weight per task ({', '.join(tasks)}), not all zero: {dict(weights)}")
    return dict(weights)


def multitask_model(configs: Mapping[str, ExperimentConfig], num_classes: Mapping[str, int], device) -> BlockNet:
    """The shared network: the backbone's blocks and, in `head`, a `ModuleDict` of one head per task.

    Each task's head is the one its own `finetune` run would start from (same seed, same init),
    so a task starts from the same weights alone and together.
    """
    models = {t: build_model(c, ARMS["finetune"], num_classes[t], device) for t, c in configs.items()}
    shared = next(iter(models.values()))
    shared.head = nn.ModuleDict({t: m.head for t, m in models.items()})
    return shared


def forward_tasks(model: BlockNet, inputs: Sequence[torch.Tensor], start: int) -> list[torch.Tensor]:
    """Each task's logits: the tasks' batches go through the shared blocks as one batch (so
    trained BatchNorm layers see them all), then each part through its own head."""
    shared = model.forward_blocks(channels_last(torch.cat(list(inputs))), start)
    parts = shared.split([len(x) for x in inputs])
    return [head(part) for head, part in zip(model.head.values(), parts)]


@torch.no_grad()
def evaluate_task(model: BlockNet, task: str, inputs: Inputs, labels: torch.Tensor, split: str) -> tuple[float, float]:
    """(mean loss, accuracy) of one task's head on its "val" or "test" split, computed as
    `Run.evaluate` does (so one task alone gives the same numbers); the mode is kept."""
    was_training = model.training
    model.eval()
    try:
        losses, preds, done = [], [], 0
        for x in inputs.eval_batches(split):
            with autocast(labels.device, inputs.bf16):
                logits = model.head[task](model.forward_blocks(x, inputs.k)).float()
            y, done = labels[done : done + len(x)], done + len(x)
            losses.append(F.cross_entropy(logits, y, reduction="sum"))
            preds.append(logits.argmax(1))
    finally:
        model.train(was_training)
    loss = (torch.stack(losses).sum() / len(labels)).item()
    return loss, (torch.cat(preds) == labels).float().mean().item()


class MultitaskRun(Run):
    """A `Run` whose network has a head per task: each step takes one batch of every task through
    the shared blocks and steps on the heads' weighted cross-entropies. Records carry the task's
    name as their `arm`; `val_accuracy` (what patience watches) and `test_accuracy` are the tasks'
    mean, `task_val` and `task_test` each task's own. With one task it is a `finetune` run."""

    def __init__(
        self,
        configs: Mapping[str, ExperimentConfig],
        weights: Mapping[str, float] | None = None,
        callbacks: Sequence[Callback] = (),
        name: str = "together",
    ):
        self.tasks = list(configs)
        if not self.tasks:
            raise ConfigError("a multitask run needs at least one task")
        cfg = configs[self.tasks[0]]
        shared = [f.name for f in fields(cfg) if f.name not in TASK_SETTINGS]
        if differ := [f for f in shared if any(getattr(c, f) != getattr(cfg, f) for c in configs.values())]:
            raise ConfigError(
                f"the tasks' configs differ in {', '.join(differ)}: tasks share everything but their data"
            )
        self.configs, self.weights = dict(configs), check_weights(self.tasks, weights)
        self.config, self.arm, self.callbacks = cfg, replace(ARMS["finetune"], name=name), list(callbacks)
        self.device = pick_device(cfg.device)
        self.data = {t: prepare_data(c, self.device) for t, c in configs.items()}
        plans = {t: plan(c, len(self.data[t].train_labels)) for t, c in configs.items()}
        if len({p.steps for p in plans.values()}) > 1:
            raise ConfigError("the tasks' budgets differ (epochs of different sizes): give the budget in steps")
        self.plans, self.plan, self.k = plans, plans[self.tasks[0]], cfg.freeze_depth
        # As `Run` does it, in the same order, so that one task alone is exactly a finetune run.
        classes = {t: d.dataset.num_classes for t, d in self.data.items()}
        self.model = multitask_model(configs, classes, self.device)
        self.summary = freeze_to(self.model, self.k, cfg.freeze_bn_stats)
        self.start_weights = weight_snapshot(self.model)
        self.bf16_train, bf16_infer = bf16_passes(self.device, cfg.precision)
        self.model.to(memory_format=torch.channels_last)
        self.task_inputs = {t: Inputs(self.model, self.k, self.data[t], configs[t], bf16_infer) for t in self.tasks}
        for inputs in self.task_inputs.values():
            inputs.check_stop = self._check_stop
        self.inputs = self.task_inputs[self.tasks[0]]
        self.optimizer, self.scheduler = build_optimizer(self.model, self.k, cfg, ARMS["finetune"], self.plan.steps)
        self.random_state = RandomState(cfg.seed, self.device)
        self.step = self.images_seen = 0
        self.seconds = 0.0
        self.best_step: int | None = None
        self.task_val: dict[str, float] = {}
        self.task_test: dict[str, float] = {}
        self.val_predictions = self.test_predictions = None
        self.test_accuracy = self.test_loss = self.val_accuracy = math.nan

    def describe(self) -> str:
        return (
            f"{self.arm.name:<9} {', '.join(self.tasks)} on {self.config.backbone}; "
            + super().describe().split("; ", 1)[1]
        )

    def _train_batches(self) -> Iterator:
        """Each task's batches in the order its own run would draw them, a batch of each per step."""
        return zip(
            *(
                self.task_inputs[t].train_batches(self.plans[t].batch_sizes, torch.Generator().manual_seed(c.seed))
                for t, c in self.configs.items()
            )
        )

    def _forward_loss(self, batch):
        xs, ys = zip(*batch)
        with autocast(self.device, self.bf16_train), self.random_state:
            logits = forward_tasks(self.model, xs, self.k)
        losses = [F.cross_entropy(z.float(), y) for z, y in zip(logits, ys)]
        loss = sum(self.weights[t] * part for t, part in zip(self.tasks, losses))
        parts = [(t, part, (z.argmax(1) == y).sum(), len(y)) for t, part, z, y in zip(self.tasks, losses, logits, ys)]
        return loss, parts

    def _has_val(self) -> bool:
        return any(len(d.val_labels) for d in self.data.values())

    def _validate(self, started: float) -> float:
        measured = {}
        for t in self.tasks:
            if len(self.data[t].val_labels):
                measured[t] = evaluate_task(self.model, t, self.task_inputs[t], self.data[t].val_labels, "val")
        self.seconds += time.perf_counter() - started
        for t, (loss, accuracy) in measured.items():
            self.task_val[t] = accuracy
            self._emit("val", loss, accuracy, t)
        self.val_accuracy = sum(self.task_val.values()) / len(self.task_val)
        return time.perf_counter()

    def _test(self, started: float) -> None:
        measured = {
            t: evaluate_task(self.model, t, self.task_inputs[t], self.data[t].test_labels, "test") for t in self.tasks
        }
        self.seconds += time.perf_counter() - started
        for t, (loss, accuracy) in measured.items():
            self.task_test[t] = accuracy
            self._emit("test", loss, accuracy, t)
        self.test_accuracy = sum(self.task_test.values()) / len(self.task_test)

    def rows(self) -> list[dict]:
        """A result row per task."""
        return [
            {"task": t, "per_class": self.configs[t].per_class, "freeze_depth": self.k, "steps": self.step,
             "val_accuracy": self.task_val.get(t, math.nan), "test_accuracy": self.task_test.get(t, math.nan),
             "seconds": round(self.seconds, 2)}
            for t in self.tasks
        ]  # fmt: skip


class _Validation(Callback):
    """The validation records, as the rows of `MultitaskResult.history`."""

    def __init__(self):
        self.rows: list[dict] = []

    def on_record(self, run: Run, record: Record) -> None:
        if record.split == "val":
            self.rows.append(
                {
                    "task": record.arm,
                    "step": record.step,
                    "split": "val",
                    "loss": record.loss,
                    "accuracy": record.accuracy,
                }
            )


def train_tasks(
    configs: Mapping[str, ExperimentConfig],
    weights: Mapping[str, float] | None = None,
    callbacks: Sequence[Callback] = (),
    name: str = "together",
) -> tuple[BlockNet, list[dict], list[dict]]:
    """Train one network on every task in `configs` at once (one task: an ordinary finetune run).

    Args:
        configs: task name -> its config (from `task_configs`); they may differ only in
            `TASK_SETTINGS`, the rest (backbone, freeze depth, budget, optimiser, seed) is shared.
        weights: task name -> the weight of its cross-entropy in the summed loss (default 1 each).
        callbacks: `Callback`s, as for any run (`StopOnEvent`, `TqdmProgress`, `History`, ...).
        name: the run's name in records and progress bars.

    Returns:
        (the trained network, a result row per task, validation records per task).
    """
    validation = _Validation()
    run = MultitaskRun(configs, weights, [*callbacks, validation], name)
    for _ in run.rounds():
        pass
    return run.model, run.rows(), validation.rows


def compare_multitask(
    config: ExperimentConfig,
    tasks: Mapping[str, Mapping],
    seeds: Sequence[int] = (0,),
    weights: Mapping[str, float] | None = None,
    callbacks: Sequence[Callback] = (),
) -> MultitaskResult:
    """Each task trained alone, and all tasks trained together in one network, per seed.

    Args:
        config: the shared settings: backbone (pretrained), freeze depth, budget, optimiser, size.
        tasks: task name -> the settings it changes (see `TASK_SETTINGS`), e.g.
            `{"tops": {"classes": (0, 2, 3, 4, 6)}, "the rest": {"classes": (1, 5, 7, 8, 9)}}`.
        seeds: one run of each setting per seed (the training images and the heads' init).
        weights: task name -> weight of its loss when together (default 1 each).
        callbacks: passed to every run (a Stop raises `StopTraining` out of this call).

    Returns:
        A `MultitaskResult`; `table` has a row per task, setting and seed.
    """
    if len(tasks) < 2:
        raise ConfigError(f"multitask learning needs at least two tasks; got {len(tasks)}: {', '.join(tasks)}")
    if not seeds:
        raise ConfigError("give at least one seed")
    weights = check_weights(list(tasks), weights)
    configs = task_configs(config, tasks)
    rows, history = [], []
    for seed in seeds:
        seeded = {t: replace(c, seed=seed) for t, c in configs.items()}
        runs = [("alone", {t: c}, None) for t, c in seeded.items()] + [("together", seeded, weights)]
        for setting, run, run_weights in runs:
            name = f"{next(iter(run))} alone" if setting == "alone" else setting
            _, run_rows, run_history = train_tasks(run, run_weights, callbacks, name)
            for r in run_rows + run_history:
                r.update(setting=setting, trained_with=", ".join(t for t in run if t != r["task"]), seed=seed)
            rows += run_rows
            history += run_history
    first = ["task", "setting", "trained_with", "seed"]
    table = pd.DataFrame(rows)
    return MultitaskResult(table[first + [c for c in table if c not in first]], pd.DataFrame(history))

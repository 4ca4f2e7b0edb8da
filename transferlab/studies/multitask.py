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
the heads' cross-entropies (weighted). Everything else is the engine's: the frozen prefix's
cached features (`Inputs`), `freeze_to`, and `build_optimizer`'s AdamW with cosine decay.

A task trained alone is the same loop with one task, and that is exactly an ordinary `finetune`
run: the same weights after training and the same test accuracy (tests/test_multitask.py checks
it). Together, a task's shared blocks also get the other tasks' gradients, and their trained
BatchNorm layers see the other tasks' images in every batch. The budget is the same number of
steps, each with one batch of *every* task: a task sees as many of its own images together as
alone, and the shared blocks see the others' as well. With every block frozen (a linear probe)
nothing is shared that trains, so together equals alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..device import autocast, bf16_passes, channels_last, pick_device
from ..errors import ConfigError, TrainingDiverged
from ..models.freezing import freeze_to
from ..models.registry import BlockNet
from ..training.config import ARMS, ExperimentConfig, plan
from ..training.features import Inputs
from ..training.run import build_model, build_optimizer
from ..training.splits import prepare_data

__all__ = ["MultitaskResult", "TASK_SETTINGS", "compare_multitask", "task_configs", "train_tasks"]

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


def train_tasks(
    configs: Mapping[str, ExperimentConfig],
    weights: Mapping[str, float] | None = None,
) -> tuple[BlockNet, list[dict], list[dict]]:
    """Train one network on every task in `configs` at once (one task: an ordinary finetune run).

    Args:
        configs: task name -> its config (from `task_configs`); they may differ only in
            `TASK_SETTINGS`, the rest (backbone, freeze depth, budget, optimiser, seed) is shared.
        weights: task name -> the weight of its cross-entropy in the summed loss (default 1 each).

    Returns:
        (the trained network, a result row per task, validation records per task).
    """
    names = list(configs)
    if not names:
        raise ConfigError("train_tasks needs at least one task")
    cfg = configs[names[0]]
    shared = [f.name for f in fields(cfg) if f.name not in TASK_SETTINGS]
    differ = [f for f in shared if any(getattr(c, f) != getattr(cfg, f) for c in configs.values())]
    if differ:
        raise ConfigError(f"the tasks' configs differ in {', '.join(differ)}: tasks share everything but their data")
    weights = check_weights(names, weights)
    device = pick_device(cfg.device)
    started = time.perf_counter()
    data = {t: prepare_data(c, device) for t, c in configs.items()}
    plans = {t: plan(c, len(data[t].train_labels)) for t, c in configs.items()}
    if len({p.steps for p in plans.values()}) > 1:
        raise ConfigError("the tasks' budgets differ (epochs of different sizes): give the budget in steps")
    steps, eval_steps, k = plans[names[0]].steps, plans[names[0]].eval_steps, cfg.freeze_depth

    # As `Run` does it, in the same order, so that one task alone is exactly a finetune run.
    model = multitask_model(configs, {t: d.dataset.num_classes for t, d in data.items()}, device)
    freeze_to(model, k, cfg.freeze_bn_stats)
    bf16_train, bf16_infer = bf16_passes(device, cfg.precision)
    model.to(memory_format=torch.channels_last)
    inputs = {t: Inputs(model, k, data[t], configs[t], bf16_infer) for t in names}
    optimizer, scheduler = build_optimizer(model, k, cfg, ARMS["finetune"], steps)
    # Each task's batches in the order its own run would draw them.
    batches = [inputs[t].train_batches(plans[t].batch_sizes, torch.Generator().manual_seed(cfg.seed)) for t in names]

    history = []
    model.train()
    for step in range(1, steps + 1):
        xs, ys = zip(*(next(b) for b in batches))
        with autocast(device, bf16_train):
            logits = forward_tasks(model, xs, k)
        loss = sum(weights[t] * F.cross_entropy(z.float(), y) for t, z, y in zip(names, logits, ys))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step in eval_steps:
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the summed loss of {', '.join(names)} became NaN or infinite by step {step} of {steps}: "
                    f"lower the learning rate (now {cfg.lr:g}) or a task's weight and run it again"
                )
            for t in names:
                if len(data[t].val_labels):
                    val_loss, val_acc = evaluate_task(model, t, inputs[t], data[t].val_labels, "val")
                    history.append({"task": t, "step": step, "split": "val", "loss": val_loss, "accuracy": val_acc})
    model.eval()
    rows = []
    for t in names:
        _, test_acc = evaluate_task(model, t, inputs[t], data[t].test_labels, "test")
        val = [h["accuracy"] for h in history if h["task"] == t]
        rows.append(
            {"task": t, "per_class": configs[t].per_class, "freeze_depth": k, "steps": steps,
             "val_accuracy": val[-1] if val else float("nan"), "test_accuracy": test_acc}
        )  # fmt: skip
    seconds = round(time.perf_counter() - started, 2)
    return model, [{**row, "seconds": seconds} for row in rows], history


def compare_multitask(
    config: ExperimentConfig,
    tasks: Mapping[str, Mapping],
    seeds: Sequence[int] = (0,),
    weights: Mapping[str, float] | None = None,
) -> MultitaskResult:
    """Each task trained alone, and all tasks trained together in one network, per seed.

    Args:
        config: the shared settings: backbone (pretrained), freeze depth, budget, optimiser, size.
        tasks: task name -> the settings it changes (see `TASK_SETTINGS`), e.g.
            `{"tops": {"classes": (0, 2, 3, 4, 6)}, "the rest": {"classes": (1, 5, 7, 8, 9)}}`.
        seeds: one run of each setting per seed (the training images and the heads' init).
        weights: task name -> weight of its loss when together (default 1 each).

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
            _, run_rows, run_history = train_tasks(run, run_weights)
            for r in run_rows + run_history:
                r.update(setting=setting, trained_with=", ".join(t for t in run if t != r["task"]), seed=seed)
            rows += run_rows
            history += run_history
    first = ["task", "setting", "trained_with", "seed"]
    table = pd.DataFrame(rows)
    return MultitaskResult(table[first + [c for c in table if c not in first]], pd.DataFrame(history))

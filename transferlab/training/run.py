"""One run: an arm trained once on an experiment's data, over its plan's budget of steps.

    run = Run(config, ARMS["finetune"], prepare_data(config), torch.device("cpu"), [History()])
    for step in run.rounds():   # yields after each validation point
        ...
    run.test_accuracy

The loop trains and emits `Record`s, nothing else: every watcher is a `Callback`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..device import autocast, bf16_passes, device_name
from ..errors import ConfigError, TrainingDiverged
from ..models.freezing import block_change, freeze_to, weight_snapshot
from ..models.registry import BlockNet, create_backbone
from .arm_run import ArmRun, arm_row
from .callbacks import Callback, Record
from .config import Arm, ExperimentConfig, Plan, plan
from .features import Inputs
from .splits import ExperimentData

__all__ = ["Run"]


class Run(ArmRun):
    """One arm trained once. Iterate `rounds()` to train; it yields after each validation point."""

    # ArmRun's constructor, the same for every kind of arm: `compare` builds them all alike.
    def __init__(
        self,
        config: ExperimentConfig,
        arm: Arm,
        data: ExperimentData,
        device: torch.device,
        callbacks: Sequence[Callback] = (),
    ):
        super().__init__(config, arm, data, device, callbacks)
        self.k = arm.depth(config)
        self.plan: Plan = plan(config, len(data.train_labels)).scaled(arm.budget_mult)
        self.model = build_model(config, arm, data.dataset.num_classes, device)
        self.summary = freeze_to(self.model, self.k, config.freeze_bn_stats)
        self.start_weights = weight_snapshot(self.model)  # for `block_change` at the end
        self.bf16_train, bf16_infer = bf16_passes(device, config.precision)
        self.model.to(memory_format=torch.channels_last)
        self.inputs = Inputs(self.model, self.k, data, config, bf16_infer)
        self.inputs.check_stop = self._check_stop
        self.optimizer, self.scheduler = build_optimizer(self.model, self.k, config, arm, self.plan.steps)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.random_state = RandomState(config.seed, device)  # dropout's draws: this run's own
        self.step = self.images_seen = 0
        self.seconds = 0.0
        self.best_step: int | None = None  # with patience: the step of the best validation accuracy
        self.val_predictions: torch.Tensor | None = None
        self.test_predictions: torch.Tensor | None = None
        self.test_accuracy = self.test_loss = self.val_accuracy = float("nan")

    @property
    def epoch(self) -> float:
        """Passes over the training images so far."""
        return self.step / self.plan.batches_per_epoch

    @property
    def trainable_params(self) -> int:
        return int(self.summary.loc[self.summary.trainable, "parameters"].sum())

    @property
    def total_params(self) -> int:
        return int(self.summary.parameters.sum())

    def describe(self) -> str:
        """E.g. "finetune  efficientnet_lite0, freeze depth 4/9, 3,600 of 3,400,000 parameters
        train, frozen prefix cached (stem, ...); 60 steps of up to 32 images = ..."."""
        s = self.summary
        return (
            f"{self.arm.name:<9} {self.config.backbone}, freeze depth {self.k}/{self.model.spec.num_blocks}, "
            f"{self.trainable_params:,} of {self.total_params:,} parameters train"
            f"{', frozen prefix cached' if self.inputs.cached else ''}"
            f" ({', '.join(s.block[~s.trainable]) or 'nothing frozen'}); {self.plan.describe()}"
        )

    def _check_stop(self) -> None:
        for cb in self.callbacks:
            cb.check_stop(self)

    def _emit(self, split: str, loss: float, accuracy: float, arm: str | None = None) -> None:
        # A head fitted to convergence takes no optimiser steps; like a baseline, it is measured
        # where the budget ends.
        converged = self.arm.fit == "converge"
        record = Record(
            arm or self.arm.name, round(self.plan.epochs if converged else self.epoch, 3),
            self.plan.steps if converged else self.step, split, float(loss), float(accuracy),
            self.images_seen, round(self.seconds, 4),
        )  # fmt: skip
        for cb in self.callbacks:
            cb.on_record(self, record)

    def _train_until(self, end: int, batches: Iterator) -> None:
        """Train up to step `end`; emit the running mean of loss and accuracy over these steps."""
        sums: dict[str, list] = {}  # per emitted name: [loss sum, correct, examples], kept on the device
        first_bad = torch.full((), -1, device=self.device)  # the first step whose loss was NaN or inf
        while self.step < end:
            loss, parts = self._forward_loss(next(batches))
            # Kept on the device and read once a round: no host synchronisation per step.
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), self.step + 1, first_bad)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            for name, part_loss, correct, n in parts:
                tally = sums.setdefault(name, [0.0, 0, 0])
                tally[0] = tally[0] + part_loss.detach() * n
                tally[1] = tally[1] + correct
                tally[2] += n
                self.images_seen += n
            self.step += 1
            for cb in self.callbacks:
                cb.on_batch_end(self)
        if first_bad.item() >= 0:
            raise diverged(self, int(first_bad.item()))
        for name, (loss_sum, correct, seen) in sums.items():
            self._emit("train", float(loss_sum) / seen, float(correct) / seen, name)

    def _forward_loss(self, batch) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor, torch.Tensor, int]]]:
        """The loss to step on, and per emitted name (loss, number right, examples) for the records."""
        x, y = batch
        with autocast(self.device, self.bf16_train), self.random_state:
            logits = self.model(x, start=self.k)
        loss = F.cross_entropy(logits.float(), y)
        return loss, [(self.arm.name, loss, (logits.argmax(1) == y).sum(), len(y))]

    @torch.no_grad()
    def evaluate(self, split: str = "test") -> tuple[float, float, torch.Tensor]:
        """(mean loss, accuracy, predictions) on "train", "val" or "test"; the model's mode is kept."""
        labels = getattr(self.data, f"{split}_labels")
        was_training = self.model.training
        self.model.eval()
        try:
            losses, preds, done = [], [], 0
            for x in self.inputs.eval_batches(split):
                with autocast(self.device, self.inputs.bf16):
                    logits = self.model(x, start=self.k).float()
                y, done = labels[done : done + len(x)], done + len(x)
                losses.append(F.cross_entropy(logits, y, reduction="sum"))
                preds.append(logits.argmax(1))
        finally:
            self.model.train(was_training)
        preds = torch.cat(preds)
        return (torch.stack(losses).sum() / len(labels)).item(), (preds == labels).float().mean().item(), preds

    def rounds(self) -> Iterator[int]:
        """Train to each validation point of the plan, yielding the step after each; measure the
        test split once at the end. With patience, stop once validation accuracy has not reached
        a new best for that many points and test the best weights. The run ends in eval mode,
        and `on_run_end` is called however it ends. `seconds` counts only this run's own work,
        so interleaved runs are timed fairly."""
        started = time.perf_counter()
        try:
            for cb in self.callbacks:
                cb.on_run_start(self)
            self._check_stop()
            if self.arm.fit == "converge":
                self._fit_head()
                self.seconds += time.perf_counter() - started
                yield self.step
                started = time.perf_counter()
            else:
                yield from self._train(started)
                started = time.perf_counter()
            self._test(started)
        finally:
            self.model.eval()
            for cb in self.callbacks:
                cb.on_run_end(self)

    def _train(self, started: float) -> Iterator[int]:
        """The optimiser over the plan's steps, a validation point at a time (see `rounds`)."""
        self.model.train()
        batches = self._train_batches()
        best, best_state, best_answers, since_best = -1.0, None, None, 0
        for end in self.plan.eval_steps:
            self._train_until(end, batches)
            if self._has_val():
                started = self._validate(started)
                if self.plan.patience is not None:
                    since_best += 1
                    if self.val_accuracy > best:
                        best, self.best_step, since_best = self.val_accuracy, self.step, 0
                        best_answers = self.val_predictions
                        best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.seconds += time.perf_counter() - started
            yield self.step
            started = time.perf_counter()
            if self.plan.patience is not None and since_best >= self.plan.patience:
                break
        if best_state is not None:  # test the weights chosen on the validation split
            self.model.load_state_dict(best_state)
            self.val_accuracy, self.val_predictions = best, best_answers
        self.seconds += time.perf_counter() - started

    # --- what a run with several heads (`studies.multitask`) does differently -------------------

    def _train_batches(self) -> Iterator:
        return self.inputs.train_batches(self.plan.batch_sizes, self.shuffle)

    def _has_val(self) -> bool:
        return len(self.data.val_labels) > 0

    def _validate(self, started: float) -> float:
        """Measure the validation split into `val_accuracy` (what patience watches) and emit it;
        returns the time the run's own clock restarts from."""
        loss, self.val_accuracy, self.val_predictions = self.evaluate("val")
        self.seconds += time.perf_counter() - started
        started = time.perf_counter()
        self._emit("val", loss, self.val_accuracy)
        return started

    def _test(self, started: float) -> None:
        """Measure the test split, once, at the end."""
        self.test_loss, self.test_accuracy, self.test_predictions = self.evaluate("test")
        self.seconds += time.perf_counter() - started
        self._emit("test", self.test_loss, self.test_accuracy)

    @torch.no_grad()
    def _fit_head(self) -> None:
        """Fit the head (a linear classifier on the pooled frozen features) to convergence: the
        same logistic regression as the pixel and TF-IDF baselines (`baselines.fit_linear`)."""
        from .baselines import fit_linear

        if self.k != self.model.spec.num_blocks:
            raise ConfigError(
                f"the {self.arm.name} arm fits its head to convergence: freeze every block (freeze='all')"
            )
        pooled = self.model.head[:-1]
        x = torch.cat([pooled(b.float()) for b in self.inputs.eval_batches("train")]).cpu().numpy()
        y = self.data.train_labels.cpu().numpy()
        weight, bias = fit_linear(x, y, self.data.dataset.num_classes)
        linear = self.model.head[-1]
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))
        self.step, self.images_seen = 0, len(y)
        train_loss, train_accuracy, _ = self.evaluate("train")
        self._emit("train", train_loss, train_accuracy)
        if len(self.data.val_labels):
            loss, self.val_accuracy, self.val_predictions = self.evaluate("val")
            self._emit("val", loss, self.val_accuracy)

    def row(self) -> dict:
        """This run's line in a result table."""
        return arm_row(
            self,
            backbone=self.config.backbone,
            freeze_depth=self.k,
            epochs=round(self.epoch, 2),
            best_step=self.best_step,
            lr=None if self.arm.fit == "converge" else self.config.lr * self.arm.lr_mult,  # no rate: a convex fit
            trainable_params=self.trainable_params,
            total_params=self.total_params,
            cached_features=self.inputs.cached,
            bf16="all" if self.bf16_train else "prefix+eval" if self.inputs.bf16 else "no",
            device=device_name(self.device),
            # Each block's relative weight change over the run, "change:<block>" (plots.weight_change).
            **{f"change:{name}": v for name, v in block_change(self.model, self.start_weights).items()},
        )


class RandomState:
    """A run's own random number generator state, for the draws its forward passes make (dropout).

    torch's dropout draws from the global generator, which anything else in the process may move.
    Entering this swaps the run's state in and leaving it swaps it back out, so a config and a
    seed give the same numbers whatever ran before in the process and beside it.
    """

    def __init__(self, seed: int, device: torch.device):
        self.devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=self.devices):
            torch.manual_seed(seed + 0x5EED)  # a stream apart from the weights' initialisation
            self.state = self._get()
        self._fork = None

    def _get(self) -> tuple:
        return (torch.get_rng_state(), *(torch.cuda.get_rng_state(d) for d in self.devices))

    def __enter__(self) -> RandomState:
        self._fork = torch.random.fork_rng(devices=self.devices)
        self._fork.__enter__()
        torch.set_rng_state(self.state[0])
        for d, state in zip(self.devices, self.state[1:]):
            torch.cuda.set_rng_state(state, d)
        return self

    def __exit__(self, *exc) -> None:
        self.state = self._get()
        self._fork.__exit__(*exc)
        self._fork = None


def build_model(config: ExperimentConfig, arm: Arm, num_classes: int, device: torch.device) -> BlockNet:
    """The arm's network: pretrained, random or given blocks, and a new head, all from the seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the head (and scratch weights) from the seed
        if isinstance(arm.init, Mapping):
            model = create_backbone(config.backbone, num_classes, pretrained=False)
            model.blocks.load_state_dict(arm.init, strict=True)
        else:
            model = create_backbone(config.backbone, num_classes, arm.init == "pretrained")
    return model.to(device)


def build_optimizer(model: BlockNet, k: int, config: ExperimentConfig, arm: Arm, steps: int):
    """AdamW over the head and blocks k+1..n (each at its own rate), with cosine decay to zero over `steps`."""
    body = [p for b in list(model.blocks.values())[k:] for p in b.parameters()]
    groups = [{"params": list(model.head.parameters()), "lr": config.lr * config.head_lr_mult}]
    if body:
        groups.append({"params": body, "lr": config.lr * arm.lr_mult})
    # The fused kernel updates every tensor in one pass: 3.5x faster optimiser steps than the
    # default per-tensor loop on the CPU (measured at k = 4: the suffix has 3.3 M parameters).
    device = next(model.parameters()).device
    fused = True if device.type in ("cpu", "cuda") else None
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay, fused=fused)
    # Cosine decay to zero over the whole budget: constant rates made small runs collapse.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    return optimizer, scheduler


def diverged(run: Run, step: int) -> TrainingDiverged:
    """The error for a loss that became NaN or infinite: the arm, the step, and what to lower."""
    cfg = run.config
    head = f" or the head's multiplier (now x{cfg.head_lr_mult:g})" if cfg.head_lr_mult > 1 else ""
    return TrainingDiverged(
        f"The {run.arm.name} arm's training loss became NaN or infinite at step {step} of "
        f"{run.plan.steps} (epoch {run.epoch:.1f}), so the run was stopped. "
        f"Lower the learning rate (now {cfg.lr * run.arm.lr_mult:g}){head} and run it again."
    )

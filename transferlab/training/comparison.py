"""A comparison: several arms trained on the same data with the same budget, side by side.

    result = compare(ExperimentConfig(per_class=10, freeze_depth=4))
    result.table        # a row per arm: val_accuracy, test_accuracy, seconds, ...
    result.verdict()    # who won, by how much, and whether an arm was still improving

`compare()` steps its runs one validation point at a time in turn, so the arms advance together
and a live chart shows them side by side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..device import device_name, pick_device
from ..errors import ConfigError, StopTraining
from ..stats import Difference, accuracy_interval, holm, paired_difference
from .arm_run import ArmRun
from .baselines import BaselineRun
from .callbacks import Callback, History, StopOnEvent
from .config import ARMS, Arm, ExperimentConfig, plan
from .run import Run
from .speed import record_speed
from .splits import ExperimentData, prepare_data
from .tuned import TunedRun

log = logging.getLogger(__name__)

__all__ = ["ComparisonResult", "Verdicts", "compare", "pretrain", "resolve_arms", "still_improving"]

# How far the best validation accuracy after the budget's midpoint must rise above the best before
# it for an arm to count as still learning (calibrated on real curves: tests/data/curves.csv).
STILL_IMPROVING = 0.03


def still_improving(history: pd.DataFrame, arm: str) -> bool:
    """Whether `arm` was still learning when its budget ran out (so more steps would likely help).

    Under cosine decay the learning rate is near zero in the last third, so a curve flattens there
    whatever the network could still learn; the question is answered where the rate is still
    large. Flagged when the best validation accuracy after the budget's midpoint is more than
    `STILL_IMPROVING` above the best up to the midpoint: a plateaued curve reaches its level
    early and gains nothing after it (a new best by validation noise is smaller than that).
    """
    val = history[(history.arm == arm) & (history.split == "val")]
    if len(val) < 4:
        return False
    steps, acc = val.step.to_numpy(), val.accuracy.to_numpy()
    middle = steps[-1] / 2
    early, late = acc[steps <= middle], acc[steps > middle]
    if len(early) == 0 or len(late) == 0:
        return False
    return bool(late.max() - early.max() > STILL_IMPROVING)


class Verdicts:
    """What a result with a `table` (a row per arm), a `history`, each arm's test answers
    (`correct`) and a `stopped` flag says: shared by `ComparisonResult` and the plain-data
    `Outcome`. Every "beats" and "within noise" comes from `transferlab.stats`."""

    table: pd.DataFrame
    history: pd.DataFrame
    stopped: bool

    def correct(self, arm: str) -> np.ndarray:
        """Whether `arm` got each test example right (bool, one per test example)."""
        raise NotImplementedError

    def accuracy(self, arm: str) -> float:
        return float(self.table.set_index("arm").loc[arm, "test_accuracy"])

    @property
    def gap(self) -> float:
        """Test accuracy of `finetune` minus `scratch` (what the transfer map plots)."""
        return self.accuracy("finetune") - self.accuracy("scratch")

    def difference(self, a: str, b: str) -> Difference:
        """Test accuracy of arm `a` minus arm `b`, paired over the test examples, with its 95% interval."""
        return paired_difference(self.correct(a), self.correct(b), a, b)

    def differences(self) -> list[Difference]:
        """The most accurate arm against each other arm, in order of test accuracy; shown
        together, so adjusted together (`stats.holm`) where there are several."""
        arms = self.table.sort_values("test_accuracy", ascending=False).arm.tolist()
        return holm([self.difference(arms[0], other) for other in arms[1:]])

    def improving(self) -> list[str]:
        """The arms still improving when their budget ran out (see `still_improving`)."""
        return [arm for arm in self.table.arm if still_improving(self.history, arm)]

    def at_chance(self) -> list[str]:
        """The arms that never left chance: guessing (one over the number of classes) lies inside
        their test accuracy's 95% interval. Their budget measured nothing about the method."""
        chance = 1 / self.num_classes()
        intervals = {arm: accuracy_interval(self.correct(arm))[1:] for arm in self.table.arm}
        return [arm for arm, (low, high) in intervals.items() if low <= chance <= high]

    def num_classes(self) -> int:
        """How many classes the test split's labels can take (chance is one over it)."""
        raise NotImplementedError

    def verdict(self) -> str:
        """The best arm against each other arm, each judged by its interval; the time each took;
        which arm would gain from a longer budget; the steps each used when they ran until they
        stopped improving."""
        if self.stopped:
            return "Stopped before the end: no verdict."
        t = self.table.sort_values("test_accuracy", ascending=False)
        if len(t) == 1:
            text = f"{t.arm.iloc[0]}: test accuracy {t.test_accuracy.iloc[0]:.1%} in {t.seconds.iloc[0]:.0f} s."
        else:
            judged = self.differences()
            text = "; ".join(d.sentence() for d in judged) + ". "
            if len(judged) > 1:
                text += f"({len(judged)} differences shown together: each interval widened for that, by Holm's rule.) "
            text += f"{judged[0].scope()[0].upper()}{judged[0].scope()[1:]}; another seed trains other models. "
            text += (
                "Test accuracy: "
                + ", ".join(f"{r.arm} {r.test_accuracy:.1%} in {r.seconds:.0f} s" for r in t.itertuples())
                + "."
            )
        linear = [a for a in self.table.arm if a in ARMS and (ARMS[a].fit == "converge" or ARMS[a].init == "baseline")]
        if linear:
            each = "each a" if len(linear) > 1 else "a"
            rule = "logistic regression fitted to convergence, the one rule for linear models"
            text += f" {', '.join(linear)}: {each} {rule}."
        if "best_step" in t and t.best_step.notna().any():
            used = [
                f"{r.arm} {int(r.steps)} (best at {int(r.best_step)})" for r in t.itertuples() if pd.notna(r.best_step)
            ]
            text += f" Trained until validation accuracy stopped improving; steps used: {', '.join(used)}."
        if stuck := self.at_chance():
            names = " and ".join(stuck)
            text += (
                f" {names} never left chance ({1 / self.num_classes():.0%} for guessing, within "
                f"{'its' if len(stuck) == 1 else 'their'} interval): this budget measured nothing about "
                f"{'it' if len(stuck) == 1 else 'them'}."
            )
        improving = self.improving()
        if improving:
            names = " and ".join(improving)
            text += (
                f" {names} {'was' if len(improving) == 1 else 'were'} still improving when the budget "
                "ran out: a longer run shows how much of the gap is training time."
            )
        return text


@dataclass
class ComparisonResult(Verdicts):
    """What `compare()` returns: a tidy table (a row per arm), every record, and the runs."""

    config: ExperimentConfig
    table: pd.DataFrame
    history: pd.DataFrame
    runs: dict[str, ArmRun] = field(repr=False)  # networks and baselines, read through one protocol
    data: ExperimentData = field(repr=False)
    stopped: bool = False

    def correct(self, arm: str) -> np.ndarray:
        return (self.runs[arm].test_predictions == self.data.test_labels).cpu().numpy()

    def num_classes(self) -> int:
        return self.data.dataset.num_classes


def run_class(arm: Arm) -> type[ArmRun]:
    """What trains an arm: a cheap baseline, a network at each candidate rate, or one network."""
    return BaselineRun if arm.init == "baseline" else TunedRun if arm.tune_lr else Run


def resolve_arms(arms: Sequence[str | Arm]) -> list[Arm]:
    """Names from `ARMS` or `Arm`s -> `Arm`s, with distinct names."""
    unknown = [a for a in arms if isinstance(a, str) and a not in ARMS]
    if unknown:
        raise ConfigError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    arms = [ARMS[a] if isinstance(a, str) else a for a in arms]
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ConfigError(f"arm names must differ: {names}")
    return arms


def compare(
    config: ExperimentConfig,
    arms: Sequence[str | Arm] = ("finetune", "scratch"),
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
    max_work: int | None = None,
) -> ComparisonResult:
    """Train several arms on the same data, interleaved one validation point at a time.

    Args:
        config: the experiment.
        arms: names from `ARMS` or `Arm`s.
        callbacks: sinks for the records (progress bars, printers, live charts).
        stop: set it from another thread to stop within one batch.
        max_work: refuse (before training) a budget of more training images per arm than this.

    Returns:
        A `ComparisonResult`; `stopped` is True when a stop request or callback ended it early.
    """
    config.validate()
    arms = resolve_arms(arms)
    started = time.perf_counter()
    device = pick_device(config.device)
    data = prepare_data(config, device)
    plan(config, len(data.train_labels), max_work)
    history = History()
    sinks = [history, *callbacks] + ([StopOnEvent(stop)] if stop is not None else [])
    runs = {a.name: run_class(a)(config, a, data, device, sinks) for a in arms}
    pending = [run.rounds() for run in runs.values()]
    stopped = False
    try:
        while pending:
            for it in list(pending):
                if next(it, None) is None:
                    pending.remove(it)
    except StopTraining:
        stopped = True
    finally:
        for it in pending:  # the others end too: their on_run_end runs now
            it.close()
    table = pd.DataFrame([run.row() for run in runs.values()])
    result = ComparisonResult(config, table, history.frame(), runs, data, stopped)
    try:  # what this device measured, for the next estimate (`speed`); never worth failing a comparison
        record_speed(result, time.perf_counter() - started, device_name(device))
    except Exception:
        log.exception("could not record the speed of this comparison")
    return result


def pretrain(config: ExperimentConfig, callbacks: Sequence[Callback] = ()) -> tuple[dict, ComparisonResult]:
    """Train the backbone from random init on a source task; return its blocks' weights.

    The weights plug into `Arm(init=weights)` for transfer experiments whose source task you
    chose yourself (labnet's shipped weights are made this way by scripts/pretrain_labnet.py).
    """
    result = compare(config, arms=[Arm("source", "random", "none")], callbacks=callbacks)
    state = {k: v.detach().cpu().clone() for k, v in result.runs["source"].model.blocks.state_dict().items()}
    return state, result

"""A comparison: several arms trained on the same data with the same budget, side by side.

    result = compare(ExperimentConfig(per_class=10, freeze_depth=4))
    result.table        # a row per arm: val_accuracy, test_accuracy, seconds, ...
    result.verdict()    # who won, by how much, and whether an arm was still improving

`compare()` steps its runs one validation point at a time in turn, so the arms advance together
and a live chart shows them side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from .baselines import BaselineRun
from .callbacks import Callback, History, StopOnEvent
from .config import ARMS, Arm, ExperimentConfig, plan
from .device import pick_device
from .errors import ConfigError, StopTraining
from .run import Run
from .splits import ExperimentData, prepare_data

__all__ = ["ComparisonResult", "Verdicts", "compare", "pretrain", "resolve_arms", "still_improving"]

# An arm whose validation accuracy rose this much over the last third of its budget, ending at
# its best, was still learning when its budget ran out.
STILL_IMPROVING = 0.02


def still_improving(history: pd.DataFrame, arm: str) -> bool:
    """Whether `arm`'s validation accuracy was still rising at the end of its budget: its last
    point is its best, and at least 2 points above where it stood two-thirds of the way in."""
    acc = history[(history.arm == arm) & (history.split == "val")].accuracy.to_numpy()
    if len(acc) < 3:
        return False
    earlier = acc[max(0, round(len(acc) * 2 / 3) - 1)]
    return bool(acc[-1] >= acc.max() and acc[-1] - earlier >= STILL_IMPROVING)


class Verdicts:
    """What a result with a `table` (a row per arm), a `history` and a `stopped` flag says:
    shared by `ComparisonResult` and the plain-data `Outcome`."""

    table: pd.DataFrame
    history: pd.DataFrame
    stopped: bool

    def accuracy(self, arm: str) -> float:
        return float(self.table.set_index("arm").loc[arm, "test_accuracy"])

    @property
    def gap(self) -> float:
        """Test accuracy of `finetune` minus `scratch` (what the transfer map plots)."""
        return self.accuracy("finetune") - self.accuracy("scratch")

    def improving(self) -> list[str]:
        """The arms still improving when their budget ran out (see `still_improving`)."""
        return [arm for arm in self.table.arm if still_improving(self.history, arm)]

    def verdict(self) -> str:
        """Who won, by how much, in how long; and which arm would gain from a longer budget."""
        if self.stopped:
            return "Stopped before the end: no verdict."
        t = self.table.sort_values("test_accuracy", ascending=False).reset_index(drop=True)
        if len(t) == 1:
            text = f"{t.arm[0]}: test accuracy {t.test_accuracy[0]:.1%} in {t.seconds[0]:.0f} s."
        else:
            a, b = t.iloc[0], t.iloc[1]
            text = (
                f"{a.arm} wins: {a.test_accuracy:.1%} vs {b.arm} {b.test_accuracy:.1%} "
                f"(+{(a.test_accuracy - b.test_accuracy) * 100:.1f} points), "
                f"{a.seconds:.0f} s vs {b.seconds:.0f} s."
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
    runs: dict[str, Run | BaselineRun] = field(repr=False)
    data: ExperimentData = field(repr=False)
    stopped: bool = False


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
    device = pick_device(config.device)
    data = prepare_data(config, device)
    plan(config, len(data.train_labels), max_work)
    history = History()
    sinks = [history, *callbacks] + ([StopOnEvent(stop)] if stop is not None else [])
    runs = {a.name: (BaselineRun if a.init == "baseline" else Run)(config, a, data, device, sinks) for a in arms}
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
    return ComparisonResult(config, table, history.frame(), runs, data, stopped)


def pretrain(config: ExperimentConfig, callbacks: Sequence[Callback] = ()) -> tuple[dict, ComparisonResult]:
    """Train the backbone from random init on a source task; return its blocks' weights.

    The weights plug into `Arm(init=weights)` for transfer experiments whose source task you
    chose yourself (labnet's shipped weights are made this way by scripts/pretrain_labnet.py).
    """
    result = compare(config, arms=[Arm("source", "random", "none")], callbacks=callbacks)
    state = {k: v.detach().cpu().clone() for k, v in result.runs["source"].model.blocks.state_dict().items()}
    return state, result

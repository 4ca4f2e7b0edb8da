"""What every arm's run is, a network (`Run`, `TunedRun`) or a baseline (`BaselineRun`), and its
one line in a result table.

A comparison trains arms of both kinds side by side; it reads them through `ArmRun` only, and
each writes its line with `arm_row`, so every arm's row has the same columns with the same
meanings (`ROW`): what a baseline lacks (a backbone, trainable parameters, optimiser steps) is
there with the value that says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .callbacks import Callback
    from .config import Arm, ExperimentConfig, Plan
    from .splits import ExperimentData

__all__ = ["ROW", "ArmRun", "answers", "arm_row"]

# Every column of a result row, with the value an arm without a network has.
ROW = {
    "arm": "",
    "backbone": "none",
    "dataset": "",
    "per_class": None,
    "freeze_depth": 0,
    "image_size": None,
    "seed": 0,
    "steps": 0,  # optimiser steps taken: 0 for a fit in one go (probe, pixels, tfidf)
    "epochs": 0.0,
    "best_step": None,  # with patience: the step whose weights were tested
    "lr": None,  # none for a fit to convergence
    "lr_tried": None,  # an arm that chooses its rate: each rate tried, with its validation accuracy
    "val_accuracy": math.nan,
    "test_accuracy": math.nan,
    # Each example's answer, "1" right and "0" wrong, in the split's fixed order: what lets
    # `stats.difference_in` count the examples' noise across seeds ("" where not measured).
    "val_correct": "",
    "test_correct": "",
    "test_loss": math.nan,
    "seconds": 0.0,
    "trainable_params": 0,
    "total_params": 0,
    "cached_features": False,
    "bf16": "no",
    "device": "",
}


class ArmRun:
    """One arm trained (or fitted) once on an experiment's data: what `compare` builds for each
    arm (`Run`, `TunedRun`, `BaselineRun`, all made the same way) and reads.

    Attributes every kind keeps: `config`, `arm`, `data`, `device`, `callbacks`; `plan`; `step`
    (optimiser steps so far); `seconds` (its own work); `val_accuracy`, `test_accuracy`,
    `test_loss`; `val_predictions`, `test_predictions` (each split's predicted labels, for the
    weights that `val_accuracy` and `test_accuracy` measured; None until measured).
    """

    plan: Plan
    step: int
    seconds: float
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    val_predictions: torch.Tensor | None  # no class defaults: `TunedRun` hands these to its chosen run
    test_predictions: torch.Tensor | None

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

    def rounds(self) -> Iterator[int]:
        """Train to each validation point, yielding the step; test once at the end."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def row(self) -> dict:
        """Its line in a result table: `arm_row`."""
        raise NotImplementedError


def arm_row(run: ArmRun, **own) -> dict:
    """`run`'s line in a result table: `ROW`'s columns, from what every run has, then `own`
    (what a network adds: its backbone, depth, rate, parameters; "change:<block>" columns)."""
    if unknown := [c for c in own if c not in ROW and not c.startswith("change:")]:
        raise KeyError(f"not a result column: {unknown}; add it to ROW so every arm has it")
    cfg = run.config
    return {
        **ROW,
        "arm": run.arm.name,
        "dataset": cfg.dataset,
        "per_class": cfg.per_class,
        "image_size": cfg.size,
        "seed": cfg.seed,
        "steps": run.step,
        "val_accuracy": run.val_accuracy,
        "test_accuracy": run.test_accuracy,
        "val_correct": answers(run.val_predictions, run.data.val_labels),
        "test_correct": answers(run.test_predictions, run.data.test_labels),
        "test_loss": run.test_loss,
        "seconds": round(run.seconds, 2),
        **own,
    }


def answers(predictions: torch.Tensor | None, labels: torch.Tensor) -> str:
    """Right and wrong per example as "1" and "0" (a table's cell, kept in the run store as text)."""
    if predictions is None or len(predictions) != len(labels):
        return ""
    return "".join("01"[int(c)] for c in (predictions.cpu() == labels.cpu()).tolist())

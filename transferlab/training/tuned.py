"""An arm with its own learning rate, chosen on the validation split: was that arm just badly tuned?

    compare(config, arms=("finetune", "scratch", "scratch_tuned"))

`TunedRun` trains one `Run` per candidate rate (`TUNED_LRS` times the config's), each with the
same budget and seed, keeps the one with the best final validation accuracy, and reports it as
the arm: its records, its test accuracy, its rate (`lr`), and every candidate's validation
accuracy (`lr_tried`). Its seconds are all the candidates' together, since that is what the
choice cost. The candidates train quietly (only Stop reaches them); the chosen one's records are
emitted when the choice is made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch

from .arm_run import ArmRun
from .callbacks import Callback, History
from .config import TUNED_LRS, Arm, ExperimentConfig
from .run import Run
from .splits import ExperimentData

__all__ = ["TunedRun"]


class _Quiet(Callback):
    """Passes a caller's stop requests and batch ticks (progress) from a candidate, as the
    tuned arm's; its records stay with the candidate until the choice is made."""

    def __init__(self, callbacks: Sequence[Callback], owner: TunedRun):
        self.callbacks, self.owner = callbacks, owner

    def check_stop(self, run: Run) -> None:
        for cb in self.callbacks:
            cb.check_stop(self.owner)

    def on_batch_end(self, run: Run) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(self.owner)


class TunedRun(ArmRun):
    """One arm trained at each candidate learning rate; the best on validation is the arm's result."""

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
        self.histories = [History() for _ in TUNED_LRS]
        quiet = _Quiet(self.callbacks, self)
        self.candidates = [
            Run(config, replace(arm, lr_mult=arm.lr_mult * m, tune_lr=False), data, device, [h, quiet])
            for m, h in zip(TUNED_LRS, self.histories)
        ]
        self.chosen = self.candidates[TUNED_LRS.index(1.0)]  # until the choice is made

    def __getattr__(self, name: str):
        # Everything else (model, plan, summary, test_accuracy, ...) is the chosen run's.
        return getattr(self.__dict__["chosen"], name)

    @property
    def plan(self):
        """Every candidate's steps together: what progress bars count to."""
        return self.candidates[0].plan.scaled(len(self.candidates))

    @property
    def step(self) -> int:
        return sum(r.step for r in self.candidates)

    @property
    def images_seen(self) -> int:
        return sum(r.images_seen for r in self.candidates)

    def describe(self) -> str:
        rates = ", ".join(f"{self.config.lr * m:g}" for m in TUNED_LRS)
        return f"{self.chosen.describe()}; learning rate chosen on validation among {rates}"

    def rounds(self) -> Iterator[int]:
        """Train the candidates one after another, then emit the chosen one's records."""
        try:
            for cb in self.callbacks:
                cb.on_run_start(self)
            for run in self.candidates:
                yield from run.rounds()
            self.chosen = max(self.candidates, key=lambda r: r.val_accuracy)
            history = self.histories[self.candidates.index(self.chosen)]
            for record in history.records:
                for cb in self.callbacks:
                    cb.on_record(self, record)
        finally:
            for cb in self.callbacks:
                cb.on_run_end(self)

    def row(self) -> dict:
        """The chosen run's line, with its rate, every candidate's validation accuracy and the
        seconds of all of them."""
        tried = ", ".join(f"{r.config.lr * r.arm.lr_mult:g}: {r.val_accuracy:.1%}" for r in self.candidates)
        seconds = round(sum(r.seconds for r in self.candidates), 2)
        return self.chosen.row() | {"arm": self.arm.name, "seconds": seconds, "lr_tried": tried}  # `ROW`'s columns

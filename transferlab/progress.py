"""Sinks for training records: a line printer (command line) and tqdm bars (notebooks)."""

from __future__ import annotations

import sys
from typing import TextIO

from .training import Callback, Record, Run

__all__ = ["Printer", "TqdmProgress"]


class Printer(Callback):
    """One line per epoch per arm, e.g. `finetune  epoch  3/15  train 0.812 / 71.0%  eval 64.2%  2.1 s`."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._train: dict[str, Record] = {}

    def on_run_start(self, run: Run) -> None:
        s = run.summary
        print(
            f"{run.arm.name:<9} {run.config.backbone}, freeze depth {run.k}/{run.model.spec.num_blocks}, "
            f"{run.trainable_params:,} of {run.total_params:,} parameters train"
            f"{', frozen prefix cached' if run.cached else ''}"
            f" ({', '.join(s.block[~s.trainable]) or 'nothing frozen'})",
            file=self.stream,
            flush=True,
        )

    def on_record(self, run: Run, record: Record) -> None:
        if record.split == "train":
            self._train[record.arm] = record
            return
        width = len(str(run.config.epochs))
        if record.split == "eval":
            t = self._train[record.arm]
            line = (
                f"{record.arm:<9} epoch {record.epoch:>{width}}/{run.config.epochs}  "
                f"train loss {t.loss:.3f} acc {t.accuracy:6.1%}  eval acc {record.accuracy:6.1%}  "
                f"{record.seconds:6.1f} s"
            )
        else:
            line = (
                f"{record.arm:<9} test accuracy {record.accuracy:.1%} (loss {record.loss:.3f}) "
                f"in {record.seconds:.1f} s"
            )
        print(line, file=self.stream, flush=True)


class TqdmProgress(Callback):
    """A tqdm bar per arm (a notebook widget in Jupyter, text elsewhere), one tick per batch."""

    def __init__(self):
        self._bars = {}

    def on_run_start(self, run: Run) -> None:
        from tqdm.auto import tqdm

        self._bars[run.arm.name] = tqdm(
            total=run.total_steps, desc=run.arm.name, position=len(self._bars), unit="batch", leave=True
        )

    def on_batch_end(self, run: Run) -> None:
        self._bars[run.arm.name].update(1)

    def on_record(self, run: Run, record: Record) -> None:
        if record.split != "train":
            self._bars[run.arm.name].set_postfix({f"{record.split} acc": f"{record.accuracy:.1%}"})

    def on_run_end(self, run: Run) -> None:
        self._bars[run.arm.name].close()

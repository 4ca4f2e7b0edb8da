"""Records and callbacks: a run emits typed `Record`s; everything that watches it is a `Callback`.

The loop does nothing but train and emit. The history, the command line's printer, the notebooks'
tqdm bars and the dashboard's live chart are all callbacks. A callback raising `StopTraining`
(or a set `stop` event) ends training after the current batch; `on_run_end` is called however
a run ends.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TextIO

import pandas as pd

from ..errors import StopTraining

if TYPE_CHECKING:
    from .run import Run

__all__ = ["Callback", "History", "Printer", "Record", "StopOnEvent", "TqdmProgress"]


@dataclass(frozen=True)
class Record:
    """One measurement. `split` is "train" (the running mean over the batches since the last
    record), "val" (the validation split, drawn from the training pool) or "test" (the test
    split, measured once, at the end). `epoch` counts passes over the training images."""

    arm: str
    epoch: float
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

    def on_run_end(self, run: Run) -> None:
        """Called once a run ends: finished, stopped or failed."""


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


class Printer(Callback):
    """A line per validation point per arm, e.g.
    `finetune  step  40/60 (epoch 10.0)  train loss 0.812 acc 71.0%  val acc 64.2%  2.1 s`."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._train: dict[str, Record] = {}

    def on_run_start(self, run: Run) -> None:
        print(run.describe(), file=self.stream, flush=True)

    def on_record(self, run: Run, record: Record) -> None:
        if record.split == "train":
            self._train[record.arm] = record
            return
        if record.split == "val":
            t = self._train[record.arm]
            width = len(str(run.plan.steps))
            line = (
                f"{record.arm:<9} step {record.step:>{width}}/{run.plan.steps} (epoch {record.epoch:.1f})  "
                f"train loss {t.loss:.3f} acc {t.accuracy:6.1%}  val acc {record.accuracy:6.1%}  "
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
            total=run.plan.steps, desc=run.arm.name, position=len(self._bars), unit="step", leave=True
        )

    def on_batch_end(self, run: Run) -> None:
        self._bars[run.arm.name].update(1)

    def on_record(self, run: Run, record: Record) -> None:
        bar = self._bars[run.arm.name]
        bar.update(max(0, record.step - bar.n))  # a fit in one go is measured at the end: its bar jumps there
        if record.split != "train":
            self._bars[run.arm.name].set_postfix({f"{record.split} acc": f"{record.accuracy:.1%}"})

    def on_run_end(self, run: Run) -> None:
        bar = self._bars.pop(run.arm.name, None)
        if bar is not None:
            if run.step < bar.total and run.step == bar.n:  # ended when it stopped improving (patience)
                bar.total = run.step
            bar.close()

"""One job of the queue: a comparison waiting for, or on, a worker, or finished; read from any thread.

The page reads a `Job` (status, records, progress, outcome) while the queue's coordinator thread
writes it; `JobQueue` in `transferlab.serve.jobs` makes them.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from ..training.callbacks import Record
from ..training.config import ExperimentConfig
from ..training.outcome import Outcome, comparison_key

if TYPE_CHECKING:
    from .jobs import JobQueue

__all__ = ["COMPARISON", "DONE", "FAILED", "FINISHED", "KINDS", "MAP_UNIT", "QUEUED", "RUNNING", "STOPPED", "Job"]

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)
COMPARISON, MAP_UNIT = "comparison", "map unit"  # a comparison someone can download a model of; a cell's arm
KINDS = (COMPARISON, MAP_UNIT)
_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One comparison waiting for, or on, a worker, or finished. Read it from any thread.

    Attributes:
        config, arms: what to train (as for `compare`; arms by name).
        owners: the sessions that asked for it; `JobQueue.jobs(owner)` filters on them. Changed
            only under the queue's lock (a new set each time: readers never see one change).
        kind: "comparison" (a model is kept for download) or "map unit" (a transfer-map cell's arm).
        status: "queued", "running", then "done", "stopped" or "failed".
        error: what went wrong, for a failed job: a message a learner can act on.
        warning: what went wrong around a job that trained (not stored, model not kept), or None.
        outcome: the `Outcome` once done (or stopped after its final test), plain data.
        stored: the run store's id of the outcome, when it was stored (or came from the store).
        phase: what a running job is doing now, in words ("training", "final test", ...).
        device: where it trains ("CPU (2 threads)", the GPU's name), once it started.
        submitted, started, finished: `time.time()` stamps.
    """

    config: ExperimentConfig
    arms: tuple[str, ...] = ("finetune", "scratch")
    owners: frozenset[str] = frozenset()
    kind: str = COMPARISON
    id: int = field(default_factory=lambda: next(_ids))
    status: str = QUEUED
    error: str | None = None
    warning: str | None = None
    outcome: Outcome | None = field(default=None, repr=False)
    stored: int | None = None
    phase: str = "waiting for a worker"
    device: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    _records: list[Record] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _steps: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # arm -> (step, total)
    _images: dict[str, int] = field(default_factory=dict, repr=False)  # arm -> images seen
    _training_since: float | None = field(default=None, repr=False)
    _queue: JobQueue | None = field(default=None, repr=False)

    def __post_init__(self):
        self.key = comparison_key(self.config, self.arms)  # what decides its numbers: equal keys, one run

    @classmethod
    def from_store(cls, outcome: Outcome, stored: int, owner: str | None, kind: str = COMPARISON) -> Job:
        """A job that is already done: a comparison the run store holds."""
        job = cls(outcome.config, outcome.arms, frozenset({owner} - {None}), kind, stored=stored)
        job.device, job.started = outcome.device, time.time() - outcome.elapsed
        job._finish(DONE, outcome)
        return job

    # -- reading, from any thread --

    def records(self) -> list[Record]:
        """A copy of the records so far."""
        with self._lock:
            return list(self._records)

    def history(self) -> pd.DataFrame:
        """The records so far as the tidy table `plots.learning_curves` takes (columns even when empty)."""
        if self.outcome is not None:
            return self.outcome.history
        return pd.DataFrame([asdict(r) for r in self.records()], columns=list(Record.__dataclass_fields__))

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def position(self) -> int | None:
        """How many jobs start before this one: 0 when running (or next), None when finished."""
        if self.done:
            return None
        return self._queue.position(self) if self._queue else 0

    @property
    def progress(self) -> float:
        """Share of the training steps done, 0..1 (1 once finished)."""
        if self.done:
            return 1.0
        with self._lock:
            steps = list(self._steps.values())
        if not steps:
            return 0.0
        # An arm not started yet counts as long as the longest one started.
        total = sum(t for _, t in steps) + (len(self.arms) - len(steps)) * max(t for _, t in steps)
        return min(1.0, sum(s for s, _ in steps) / max(1, total))

    @property
    def steps(self) -> int:
        """The longest arm's budget in optimiser steps (0 until an arm has started)."""
        with self._lock:
            return max((t for _, t in self._steps.values()), default=0)

    @property
    def images_per_second(self) -> float | None:
        """Training throughput of all arms together, in images per second of wall time."""
        with self._lock:
            images, since = sum(self._images.values()), self._training_since
        if not images or since is None:
            return None
        return images / max((self.finished or time.time()) - since, 1e-6)

    @property
    def elapsed(self) -> float:
        """Seconds since the job started running (0 while it waits)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; returns whether it has."""
        return self._done.wait(timeout)

    def stop(self, owner: str | None = None) -> None:
        """Stop training within one batch, or take the job out of the queue if it still waits.

        With `owner`, only that session lets go: a job other sessions joined goes on for them.
        """
        if self._queue is not None:
            self._queue._release(self, owner)
        else:
            self.stop_event.set()

    # -- written by the coordinator --

    def _update(self, **fields) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(self, name, value)

    def _handle(self, message: tuple) -> None:
        kind, _, *args = message
        with self._lock:
            if kind == "record":
                self._records.append(args[0])
            elif kind == "start":
                arm, total, self.device = args
                self._steps[arm] = (0, total)
                self._images.setdefault(arm, 0)
                self._training_since = self._training_since or time.time()
                self.phase = "training"
            elif kind == "progress":
                arm, step, images = args
                self._steps[arm] = (step, self._steps[arm][1])
                self._images[arm] = images
            elif kind == "end":  # an arm that ended early (patience, a stop) is done at its last step
                arm, step = args
                if arm in self._steps:
                    self._steps[arm] = (step, step)
            elif kind == "phase":
                self.phase = args[0]
            elif kind == "warning":
                self.warning = args[0]

    def _finish(self, status: str, outcome: Outcome | None = None, error: str | None = None) -> None:
        with self._lock:
            self.outcome, self.error = outcome, error
            self.finished = time.time()
            self.phase = status
            self.status = status  # last: a reader that sees the final status sees the outcome too
        self._done.set()

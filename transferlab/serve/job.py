"""The queue's jobs, read from any thread: a run waiting for, or on, a worker, or finished.

The page reads a job (status, records, progress, outcome) while the queue's coordinator threads
write it; `JobQueue` in `transferlab.serve.jobs` makes them. A `Job` is what a worker trains: a
map unit, or one arm of a comparison. A `ComparisonJob` is what a session asked for: its arms are
jobs of their own ("arm" units), shared with every comparison that needs the same run. A
`TaskJob` is work besides training (an import, an export: `transferlab.serve.tasks`).
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
from .tasks import EXPORT, IMPORT

if TYPE_CHECKING:
    from .jobs import JobQueue

__all__ = [
    "ARM",
    "COMPARISON",
    "DONE",
    "EXPORT",
    "FAILED",
    "FINISHED",
    "IMPORT",
    "KINDS",
    "MAP_UNIT",
    "QUEUED",
    "RUNNING",
    "STOPPED",
    "ComparisonJob",
    "Job",
    "TaskJob",
]

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)
# A comparison a session asked for; one of its arms, trained as a unit; a transfer-map cell's arm.
COMPARISON, ARM, MAP_UNIT = "comparison", "arm", "map unit"
KINDS = (COMPARISON, MAP_UNIT)  # the runs a session submits; tasks are IMPORT and EXPORT
WORKING = {IMPORT: "reading the images", EXPORT: "writing the file"}  # a running task's phase
_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One run (an arm of a comparison, or a map unit) waiting for, or on, a worker, or finished.
    Read it from any thread.

    Attributes:
        config, arms: what to train (as for `compare`; arms by name); None for a task.
        owners: the sessions that asked for it; `JobQueue.jobs(owner)` filters on them. Changed
            only under the queue's lock (a new set each time: readers never see one change).
        kind: "arm" (of a comparison: a model is kept for download) or "map unit" (a transfer-map
            cell's arm); "comparison" for a `ComparisonJob`; "import" or "export" for a `TaskJob`.
        status: "queued", "running", then "done", "stopped" or "failed".
        error: what went wrong, for a failed job: a message a learner can act on.
        warning: what went wrong around a job that trained (not stored, model not kept), or None.
        outcome: the `Outcome` once done (or stopped after its final test), plain data.
        stored: the run store's id of the outcome, when it was stored (or came from the store).
        phase: what a running job is doing now, in words ("training", "final test", ...).
        device: where it trains ("CPU (2 threads)", the GPU's name), once it started.
        submitted, started, finished: `time.time()` stamps.
    """

    config: ExperimentConfig | None
    arms: tuple[str, ...] = ("finetune", "scratch")
    owners: frozenset[str] = frozenset()
    kind: str = COMPARISON
    id: int = field(default_factory=lambda: next(_ids))
    batch: object = None  # jobs of one batch (a comparison's arms) take one turn together; default: its id
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
    _parents: list[ComparisonJob] = field(default_factory=list, repr=False)  # comparisons this is an arm of
    reused: bool = False  # finished before it was asked for: the run store had it

    def __post_init__(self):
        self.batch = self.id if self.batch is None else self.batch
        self.key = comparison_key(self.config, self.arms)  # what decides its numbers: equal keys, one run

    @classmethod
    def from_store(cls, outcome: Outcome, stored: int, owner: str | None, kind: str = COMPARISON) -> Job:
        """A job that is already done: a comparison the run store holds."""
        job = cls(outcome.config, outcome.arms, frozenset({owner} - {None}), kind, stored=stored)
        job.device, job.started, job.reused = outcome.device, time.time() - outcome.elapsed, True
        job._finish(DONE, outcome)
        return job

    def batch_of(self, owner: str) -> object:
        """What this job is part of for `owner`: the comparison of theirs it is an arm of, else itself."""
        return next((parent.key for parent in self._parents if owner in parent.owners), self.batch)

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
        self._tell_parents()

    def _tell_parents(self) -> None:
        for parent in list(self._parents):
            parent._refresh()

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
                self.phase = WORKING.get(self.kind, "training")
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
        if kind in ("start", "phase"):
            self._tell_parents()

    def _finish(self, status: str, outcome: Outcome | None = None, error: str | None = None) -> None:
        with self._lock:
            self.outcome, self.error = outcome, error
            self.finished = time.time()
            self.phase = status
            self.status = status  # last: a reader that sees the final status sees the outcome too
        self._done.set()
        self._tell_parents()


@dataclass(eq=False)
class ComparisonJob(Job):
    """A comparison a session asked for, made of one job per arm (`parts`, of kind "arm").

    Each arm trains on whichever worker is free, and an arm that does not use the freeze depth
    (scratch, the baselines) is the same unit at every depth (`unit_config`): eight comparisons at
    eight depths train scratch once. The page reads this job as it read a single one; the records
    arrive from wherever each arm trains. The queue finishes it (`JobQueue._settle`) once its parts
    have, with their outcomes merged into one (`Outcome.merge`).
    """

    parts: tuple[Job, ...] = ()
    _settled: bool = field(default=False, repr=False)

    def records(self) -> list[Record]:
        return [record for part in self.parts for record in part.records()]

    def history(self) -> pd.DataFrame:
        if self.outcome is not None:
            return self.outcome.history
        return pd.concat([part.history() for part in self.parts], ignore_index=True)

    @property
    def position(self) -> int | None:
        """How many other runs start before this comparison's last arm: 0 once an arm trains."""
        if self.done:
            return None
        waiting = [part.position for part in self.parts if part.status == QUEUED]
        if len(waiting) < len(self.parts) or None in waiting:
            return 0
        return max(waiting) - (len(waiting) - 1)  # its own arms ahead of the last are not in the way

    @property
    def progress(self) -> float:
        return 1.0 if self.done else sum(part.progress for part in self.parts) / len(self.parts)

    @property
    def steps(self) -> int:
        return max(part.steps for part in self.parts)

    @property
    def images_per_second(self) -> float | None:
        """All arms' training images over the wall time from the first arm's start to the last's end."""
        trained = [p for p in self.parts if p._training_since is not None and not p.reused]
        if not trained:
            return None
        images = sum(sum(p._images.values()) for p in trained)
        span = max(p.finished or time.time() for p in trained) - min(p._training_since for p in trained)
        return images / max(span, 1e-6)

    def _refresh(self) -> None:
        """Follow the parts: running once one runs; finished (by the queue) once they have."""
        if self.done:
            return
        running = [part for part in self.parts if part.status == RUNNING]
        with self._lock:
            if running:
                self.status, self.phase = RUNNING, running[0].phase
                self.device = self.device or running[0].device
            if self.started is None and (starts := [p.started for p in self.parts if p.started is not None]):
                self.started = min(starts)
        # Stopped: what other sessions share goes on for them, and is not waited for.
        if all(part.done or (self.stop_event.is_set() and not part.stop_event.is_set()) for part in self.parts):
            if self._queue is not None:
                self._queue._settle(self)


@dataclass(eq=False)
class TaskJob(Job):
    """Work besides training a worker does for a page (`transferlab.serve.tasks`): `kind` is
    "import" or "export", `task_args` the task function's arguments, `result` what it returned
    (an `ImportReport`, an exported file's path). The same export asked for twice is one task."""

    task_args: dict = field(default_factory=dict)
    result: object = None

    def __post_init__(self):
        self.batch = self.id if self.batch is None else self.batch
        shared = self.kind == EXPORT  # an import is its own upload: never joined
        self.key = f"{self.kind}:{sorted(self.task_args.items())}" if shared else f"{self.kind}:{self.id}"

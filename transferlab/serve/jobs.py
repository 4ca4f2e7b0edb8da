"""The queue of comparisons a server trains: worker processes, in order, each result stored once.

One machine serves a whole class from the dashboard. Every session submits its comparisons to
the same `JobQueue`; worker processes (`transferlab.serve.worker`, one per device by default) train
them in submission order and stream their records back, so the page server's interpreter only
serves pages and every open page costs the training nothing. Each session sees only the `Job`s
it owns.

    >>> queue = JobQueue(store=RunStore())
    >>> job = queue.submit(ExperimentConfig(per_class=10, freeze_depth=4), owner="session-1")
    >>> job.status, job.position          # ("queued", 0), then ("running", 0)
    >>> job.wait(); job.outcome.verdict()

Asking twice for the same comparison (configuration, seed and arms) costs one run: a queued or
running one is joined, and a finished one comes from the run store at once. Thirty students on the
default settings cost one run. A worker that dies is replaced and its job reported as failed; one
that does not answer a stop in `stop_grace` seconds is killed and replaced.

Plain threads and processes, no streamlit: the dashboard holds the queue in `st.cache_resource`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from ..training.callbacks import Record
from ..training.config import ARMS, ExperimentConfig
from ..training.outcome import Outcome, comparison_key
from ..training.store import RunStore
from .worker import WorkerProcess, gpu_count

__all__ = ["DONE", "FAILED", "QUEUED", "RUNNING", "STOPPED", "Job", "JobQueue"]

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)

log = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One comparison waiting for, or on, a worker, or finished. Read it from any thread.

    Attributes:
        config, arms: what to train (as for `compare`; arms by name).
        owners: the sessions that asked for it; `JobQueue.jobs(owner)` filters on them.
        status: "queued", "running", then "done", "stopped" or "failed".
        error: what went wrong, for a failed job: a message a learner can act on.
        outcome: the `Outcome` once done (or stopped after its final test), plain data.
        stored: the run store's id of the outcome, when it was stored (or came from the store).
        phase: what a running job is doing now, in words ("training", "final test", ...).
        device: where it trains ("CPU (2 threads)", the GPU's name), once it started.
        submitted, started, finished: `time.time()` stamps.
    """

    config: ExperimentConfig
    arms: tuple[str, ...] = ("finetune", "scratch")
    owners: set[str] = field(default_factory=set)
    id: int = field(default_factory=lambda: next(_ids))
    status: str = QUEUED
    error: str | None = None
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
    def from_store(cls, outcome: Outcome, stored: int, owner: str | None) -> Job:
        """A job that is already done: a comparison the run store holds."""
        job = cls(outcome.config, outcome.arms, {owner} if owner else set(), stored=stored)
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
        with self._lock:
            if owner is not None and self.owners - {owner}:
                self.owners.discard(owner)
                return
        self.stop_event.set()
        if self._queue is not None:
            self._queue._withdraw(self)

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

    def _finish(self, status: str, outcome: Outcome | None = None, error: str | None = None) -> None:
        with self._lock:
            self.outcome, self.error = outcome, error
            self.finished = time.time()
            self.phase = status
            self.status = status  # last: a reader that sees the final status sees the outcome too
        self._done.set()


class JobQueue:
    """A FIFO of comparisons and the worker processes that train them, one job per worker at a time.

    Args:
        workers: how many worker processes (`$TRANSFERLAB_WORKERS`, else one per GPU, else one).
            More than one per device pays off when the device has room, as a GPU serving a class has.
        store: where finished comparisons are written, and found again instead of retrained.
        max_work: refuse a comparison whose budget trains more images per arm than this.
        runner: "MODULE:FUNCTION" with `compare`'s signature for the workers to call (tests use stand-ins).
        warm: "DATASET:BACKBONE" each worker loads before its first job.
        stop_grace: seconds a worker gets to answer a stop before it is killed and replaced.
    """

    def __init__(
        self,
        workers: int | None = None,
        store: RunStore | None = None,
        max_work: int | None = None,
        runner: str | None = None,
        warm: str | None = None,
        stop_grace: float = 10.0,
    ):
        self.workers = workers or int(os.environ.get("TRANSFERLAB_WORKERS", 0)) or gpu_count() or 1
        self.store, self.max_work, self.runner, self.warm = store, max_work, runner, warm
        self.stop_grace = stop_grace
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._procs: dict[int, WorkerProcess] = {}
        self._threads = [
            threading.Thread(target=self._serve, args=(slot,), name=f"transferlab-jobs-{slot}", daemon=True)
            for slot in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, config: ExperimentConfig, arms: Sequence[str] = ("finetune", "scratch"), owner=None) -> Job:
        """Queue a comparison and return its `Job` at once.

        The same comparison already queued or running is joined; one already in the store comes
        back finished.
        """
        arms = tuple(arms)
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
        key = comparison_key(config, arms)
        with self._cond:
            if self._closed:
                raise RuntimeError("this JobQueue has been shut down; make a new one")
            if job := self._join(key, owner):
                return job
        if self.store is not None and (done := _from_store(self.store, key, owner)):  # outside the lock: a file
            return done
        with self._cond:
            if job := self._join(key, owner):  # queued by another session meanwhile
                return job
            job = Job(config, arms, {owner} if owner else set(), _queue=self)
            self._waiting.append(job)
            self._cond.notify_all()
        return job

    def position(self, job: Job) -> int | None:
        """0 when `job` is running (or next), n when n jobs start before it, None when not in the queue."""
        with self._cond:
            if job in self._running:
                return 0
            for i, waiting in enumerate(self._waiting):
                if waiting is job:
                    return max(0, i + len(self._running) - self.workers + 1)
            return None

    def jobs(self, owner: str | None = None) -> list[Job]:
        """The unfinished jobs, running first, then in queue order; only `owner`'s when given."""
        with self._cond:
            jobs = self._running + list(self._waiting)
        return [j for j in jobs if owner is None or owner in j.owners]

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (for measuring them)."""
        return [worker.process.pid for worker in self._procs.values() if worker.alive]

    def shutdown(self, timeout: float | None = 10) -> None:
        """Stop every job (waiting and running) and end the workers."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            for job in self._running:
                job.stop_event.set()
            self._cond.notify_all()
        for job in waiting:
            job.stop_event.set()
            job._finish(STOPPED)
        for thread in self._threads:
            thread.join(timeout)
        for worker in list(self._procs.values()):
            worker.kill()

    # -- internals --

    def _join(self, key: str, owner: str | None) -> Job | None:
        """The queued or running job with this key, now also `owner`'s (with the lock held)."""
        for job in self._running + list(self._waiting):
            if job.key == key and job.active and not job.stop_event.is_set():
                if owner:
                    job._update(owners=job.owners | {owner})
                return job
        return None

    def _withdraw(self, job: Job) -> None:
        with self._cond:
            if job not in self._waiting:
                return  # running (the coordinator passes the stop on) or already finished
            self._waiting.remove(job)
        job._finish(STOPPED)

    def _next(self) -> Job | None:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            job = self._waiting.popleft()
            self._running.append(job)
            return job

    def _worker(self, slot: int) -> WorkerProcess:
        worker = self._procs.get(slot)
        if worker is None or not worker.alive:
            worker = self._procs[slot] = WorkerProcess(self.runner, self.warm, slot)
        return worker

    def _serve(self, slot: int) -> None:
        """One coordinator thread per worker: hands it jobs, relays its messages, watches it."""
        self._worker(slot)  # started at once, so the first job does not wait for imports
        while (job := self._next()) is not None:
            try:
                self._run(job, self._worker(slot), slot)
            except Exception as error:  # never leave a job hanging
                log.exception("job %s", job.id)
                job._finish(FAILED, error=f"{type(error).__name__}: {error}")
            finally:
                with self._cond:
                    self._running.remove(job)

    def _run(self, job: Job, worker: WorkerProcess, slot: int) -> None:
        if job.stop_event.is_set():  # stopped while being handed over
            job._finish(STOPPED)
            return
        job._update(status=RUNNING, phase="loading data and models", started=time.time())
        kind, value = worker.train(job, self.max_work, self.stop_grace)
        if kind == "done":
            _finish_with(job, value, self.store)
            return
        if kind in ("died", "deaf"):
            self._procs.pop(slot, None)
        if kind == "deaf":
            log.warning("worker %s did not stop job %s within %s s: replaced", slot, job.id, self.stop_grace)
            job._finish(STOPPED)
        elif kind == "died":
            job._finish(FAILED, error=f"the training process died (exit code {value}; out of memory?). Try again.")
        else:
            job._finish(FAILED, error=value)


def _from_store(store: RunStore, key: str, owner: str | None) -> Job | None:
    """A finished job for the stored comparison with this key (now also `owner`'s), or None."""
    stored = store.find(key)
    if stored is None:
        return None
    if owner:
        store.add_owner(stored, owner)
    return Job.from_store(store.load(stored), stored, owner)


def _finish_with(job: Job, outcome: Outcome, store: RunStore | None) -> None:
    """End `job` with its outcome, stored (under every owner) unless it was stopped."""
    if outcome.stopped:
        job._finish(STOPPED, outcome)
        return
    if store is None:
        job._finish(DONE, outcome)
        return
    owners = sorted(job.owners)
    job.stored = store.save(outcome, owners[0] if owners else None)
    for owner in owners[1:]:
        store.add_owner(job.stored, owner)
    job._finish(DONE, outcome)
    for owner in job.owners - set(owners):  # sessions that joined while it was being stored
        store.add_owner(job.stored, owner)

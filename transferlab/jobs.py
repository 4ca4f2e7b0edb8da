"""A process-wide queue of training jobs: one worker thread trains them one at a time, in order.

One machine serves a whole class from the dashboard: every session submits jobs to the same
`JobQueue`, the device trains one job at a time in submission order, and each session keeps,
and sees, only the `Job`s it submitted. While a job trains, its records stream into a
thread-safe list, so a page can redraw the live curves from `job.history()` at any moment;
`job.stop()` ends a running job within one batch (or takes a waiting one out of the queue).

    >>> queue = JobQueue()
    >>> job = queue.submit(ExperimentConfig(per_class=10, freeze_depth=4), owner="session-1")
    >>> job.status, job.position          # ("queued", 0), then ("running", 0)
    >>> job.wait(); job.result.verdict()

Plain threads, no streamlit: the dashboard holds the queue in `st.cache_resource` and its jobs
in `st.session_state`; a notebook or a test can use it as it is.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from .errors import TransferlabError
from .training import Arm, Callback, ComparisonResult, ExperimentConfig, Record, Run, compare, device_name

__all__ = ["DONE", "FAILED", "QUEUED", "RUNNING", "STOPPED", "Job", "JobQueue"]

QUEUED, RUNNING, DONE, STOPPED, FAILED = "queued", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)

log = logging.getLogger(__name__)
_ids = itertools.count(1)

Runner = Callable[..., ComparisonResult]  # compare's signature: (config, arms, callbacks, stop)


@dataclass(eq=False)
class Job:
    """One comparison waiting for, or on, the device. Read it from any thread.

    Attributes:
        config, arms: what to train (as for `compare`).
        owner: who submitted it (a dashboard session id); `JobQueue.jobs(owner)` filters on it.
        status: "queued", "running", then "done", "stopped" or "failed".
        error: what went wrong, for a failed job: a message a learner can act on.
        result: the `ComparisonResult` once finished (also after a stop, with partial curves).
        phase: what a running job is doing now, in words ("training", "final test", ...).
        device: where it trains ("CPU (2 threads)", the GPU's name), once it started.
        submitted, started, finished: `time.time()` stamps.
    """

    config: ExperimentConfig
    arms: tuple[str | Arm, ...] = ("finetune", "scratch")
    owner: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    status: str = QUEUED
    error: str | None = None
    result: ComparisonResult | None = field(default=None, repr=False)
    phase: str = "waiting for the device"
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

    # -- reading, from any thread --

    def records(self) -> list[Record]:
        """A copy of the records so far."""
        with self._lock:
            return list(self._records)

    def history(self) -> pd.DataFrame:
        """The records so far as the tidy table `plots.learning_curves` takes (columns even when empty)."""
        return pd.DataFrame([asdict(r) for r in self.records()], columns=list(Record.__dataclass_fields__))

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def position(self) -> int | None:
        """How many jobs run before this one starts: 0 when running (or next), None when finished."""
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
        total = steps[0][1] * len(self.arms)  # every arm has the same number of steps
        return min(1.0, sum(s for s, _ in steps) / max(1, total))

    @property
    def images_per_second(self) -> float | None:
        """Training throughput of all arms together, in images per second of wall time."""
        with self._lock:
            images, since = sum(self._images.values()), self._training_since
        if not images or since is None:
            return None
        end = self.finished or time.time()
        return images / max(end - since, 1e-6)

    @property
    def elapsed(self) -> float:
        """Seconds since the job started running (0 while it waits)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; returns whether it has."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop training within one batch, or take the job out of the queue if it still waits."""
        self.stop_event.set()
        if self._queue is not None:
            self._queue._withdraw(self)

    # -- written by the worker --

    def _finish(self, status: str, result: ComparisonResult | None = None, error: str | None = None) -> None:
        self.result, self.error = result, error
        self.finished = time.time()
        self.phase = status
        self.status = status  # last: a reader that sees the final status sees the result too
        self._done.set()


class _JobSink(Callback):
    """The worker's callback: pushes records into the job and keeps its progress counters."""

    def __init__(self, job: Job):
        self.job = job

    def on_run_start(self, run: Run) -> None:
        job = self.job
        with job._lock:
            job._steps[run.arm.name] = (0, run.total_steps)
            job._images.setdefault(run.arm.name, 0)
            if job._training_since is None:
                job._training_since = time.time()
        job.device = device_name(run.device)
        job.phase = "training"

    def on_batch_end(self, run: Run) -> None:
        with self.job._lock:
            self.job._steps[run.arm.name] = (run.step, run.total_steps)
            self.job._images[run.arm.name] = run.images_seen

    def on_record(self, run: Run, record: Record) -> None:
        with self.job._lock:
            self.job._records.append(record)
        if record.split == "eval" and record.epoch == run.config.epochs:
            self.job.phase = "final test on the whole test split"


class JobQueue:
    """A FIFO of jobs and one worker thread that trains them one at a time.

    Args:
        runner: what trains a job; `compare` (the default) or a stand-in with its signature.
        keep_models: keep the trained networks in `job.result.runs[arm].model`. Off by default:
            a classroom of sessions would otherwise pile up networks and optimiser states on the
            device. Finished jobs keep their tables, histories and test predictions either way.
    """

    def __init__(self, runner: Runner = compare, keep_models: bool = False):
        self.runner = runner
        self.keep_models = keep_models
        self._waiting: deque[Job] = deque()
        self._current: Job | None = None
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False

    def submit(
        self, config: ExperimentConfig, arms: Sequence[str | Arm] = ("finetune", "scratch"), owner: str | None = None
    ) -> Job:
        """Queue a comparison; returns its `Job` at once (status "queued")."""
        job = Job(config, tuple(arms), owner, _queue=self)
        with self._cond:
            if self._closed:
                raise RuntimeError("this JobQueue has been shut down; make a new one")
            self._waiting.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="transferlab-jobs", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        return job

    def position(self, job: Job) -> int | None:
        """0 when `job` is running (or next), n when n jobs run before it, None when not in the queue."""
        with self._cond:
            if job is self._current:
                return 0
            for i, waiting in enumerate(self._waiting):
                if waiting is job:
                    return i + (self._current is not None)
            return None

    def jobs(self, owner: str | None = None) -> list[Job]:
        """The unfinished jobs, running first, then in queue order; only `owner`'s when given."""
        with self._cond:
            jobs = ([self._current] if self._current else []) + list(self._waiting)
        return [j for j in jobs if owner is None or j.owner == owner]

    def shutdown(self, timeout: float | None = 10) -> None:
        """Stop every job (waiting and running) and end the worker thread."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            current = self._current
            self._cond.notify_all()
        for job in waiting:
            job.stop_event.set()
            job._finish(STOPPED)
        if current is not None:
            current.stop_event.set()
        if self._worker is not None:
            self._worker.join(timeout)

    # -- internals --

    def _withdraw(self, job: Job) -> None:
        with self._cond:
            if job not in self._waiting:
                return  # running (the stop event ends it within a batch) or already finished
            self._waiting.remove(job)
        job._finish(STOPPED)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._current = self._waiting.popleft()
            try:
                self._execute(job)
            finally:
                with self._cond:
                    self._current = None

    def _execute(self, job: Job) -> None:
        if job.stop_event.is_set():  # stopped while being handed to the worker
            job._finish(STOPPED)
            return
        job.started = time.time()
        job.status, job.phase = RUNNING, "loading data and models"
        try:
            result = self.runner(job.config, job.arms, callbacks=[_JobSink(job)], stop=job.stop_event)
        except TransferlabError as error:  # bad settings, missing weights or data: the message says what to do
            job._finish(FAILED, error=str(error))
        except Exception as error:  # a bug, or out of memory: say what, keep the worker alive
            log.exception("job %s failed", job.id)
            job._finish(FAILED, error=f"{type(error).__name__}: {error}")
        else:
            if not self.keep_models:
                for run in result.runs.values():
                    run.release()
            job._finish(STOPPED if result.stopped else DONE, result=result)

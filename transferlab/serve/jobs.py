"""The queue of comparisons a server trains: worker processes, sessions served in turn, each result stored once.

One machine serves a whole class from the dashboard. Every session submits its comparisons to
the same `JobQueue`; worker processes (`transferlab.serve.worker`, one per device by default) train
them and stream their records back, so the page server's interpreter only serves pages and every
open page costs the training nothing. Each session sees only the `Job`s it owns.

Sessions are served in turn (`transferlab.serve.turns`): a transfer map of a hundred units
delays another session's single Run by one unit, not by the whole map. A session may have at most
`max_waiting` jobs waiting. Jobs have a kind ("comparison", or "map unit" from the transfer map,
or the tasks "import" and "export": `submit_task`); a page finds and cancels its own by owner and
kind, and a map page that stops calling `touch` (closed, say) has its waiting units cancelled after
`abandon_after` seconds.

    >>> queue = JobQueue(store=RunStore())
    >>> job = queue.submit(ExperimentConfig(per_class=10, freeze_depth=4), owner="session-1")
    >>> job.status, job.position          # ("queued", 0), then ("running", 0)
    >>> job.wait(); job.outcome.verdict()

Asking twice for the same comparison (configuration, seed and arms) costs one run: a queued or
running one of the same kind is joined, and a finished one comes from the run store at once.
Thirty students on the default settings cost one run. A worker that dies is replaced and its job reported as failed; one
that does not answer a stop in `stop_grace` seconds is killed and replaced.

Plain threads and processes, no streamlit: the dashboard holds the queue in `st.cache_resource`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from ..errors import TransferlabError
from ..training.config import ARMS, ExperimentConfig, unit_config
from ..training.outcome import Outcome, comparison_key
from ..training.store import RunStore
from .job import (
    ARM,
    COMPARISON,
    DONE,
    EXPORT,
    FAILED,
    IMPORT,
    KINDS,
    MAP_UNIT,
    RUNNING,
    STOPPED,
    ComparisonJob,
    Job,
    TaskJob,
)
from .ray_workers import RayWorker, ray_workers
from .turns import Turns
from .worker import WorkerProcess, gpu_count, gpu_name

__all__ = ["JobQueue", "QueueFull"]  # the job kinds and states are `transferlab.serve.job`'s

MAX_WAITING = 150  # one session's jobs waiting: a full transfer map (120 units) and then some
ABANDON_AFTER = 60.0  # seconds without a `touch` after which a closed map page's waiting units go


class QueueFull(TransferlabError):
    """A session asked for more jobs than it may have waiting."""


log = logging.getLogger(__name__)


class JobQueue:
    """Comparisons in one line per session, and the worker processes that train them, one job per
    worker at a time, sessions in turn.

    Args:
        workers: how many worker processes (`$TRANSFERLAB_WORKERS`, else one per GPU, else one).
            More than one per device pays off when the device has room, as a GPU serving a class has.
        store: where finished comparisons are written, and found again instead of retrained.
        max_work: refuse a comparison whose budget trains more images per arm than this.
        runner: "MODULE:FUNCTION" with `compare`'s signature for the workers to call (tests use stand-ins).
        warm: "DATASET:BACKBONE" each worker loads before its first job.
        stop_grace: seconds a worker gets to answer a stop before it is killed and replaced.
        max_waiting: jobs one session may have waiting (joining another's job is free).
        abandon_after: seconds after a map page's last `touch` when its waiting units are cancelled.
        ray: a Ray cluster's address (`$TRANSFERLAB_RAY_ADDRESS`; "local" starts an instance here):
            the workers are Ray actors there (`transferlab.serve.ray_workers`), by default one per
            GPU of the cluster. None: local worker processes.
    """

    def __init__(
        self,
        workers: int | None = None,
        store: RunStore | None = None,
        max_work: int | None = None,
        runner: str | None = None,
        warm: str | None = None,
        stop_grace: float = 10.0,
        max_waiting: int = MAX_WAITING,
        abandon_after: float = ABANDON_AFTER,
        ray: str | None = None,
    ):
        self.ray = ray or os.environ.get("TRANSFERLAB_RAY_ADDRESS") or None
        given = workers or int(os.environ.get("TRANSFERLAB_WORKERS", 0))
        self.workers = given or (ray_workers(self.ray) if self.ray else gpu_count() or 1)
        self.store, self.max_work, self.runner, self.warm = store, max_work, runner, warm
        self.stop_grace, self.max_waiting, self.abandon_after = stop_grace, max_waiting, abandon_after
        # CPU workers split the cores: two workers that each take every core only slow each other down.
        self.threads = None if gpu_count() or self.ray else max(1, (os.cpu_count() or 1) // self.workers)
        self._waiting = Turns()
        self._comparisons: list[ComparisonJob] = []  # unfinished, in submission order
        self._seen: dict[str, float] = {}  # owner -> last `touch` (monotonic seconds)
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._procs: dict[int, WorkerProcess | RayWorker] = {}
        self._threads = [
            threading.Thread(target=self._serve, args=(slot,), name=f"transferlab-jobs-{slot}", daemon=True)
            for slot in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        config: ExperimentConfig,
        arms: Sequence[str] = ("finetune", "scratch"),
        owner: str | None = None,
        kind: str = COMPARISON,
    ) -> Job:
        """Queue a comparison (or a map unit) and return its job at once.

        A comparison is a `ComparisonJob` of one "arm" job per arm, each shared with every other
        comparison that needs the same run (`unit_config`). The same job of the same kind already
        queued or running is joined; one already in the store comes back finished. Settings that
        cannot run are refused here, not after a wait (`ConfigError`), and so are jobs beyond the
        session's `max_waiting` (`QueueFull`).
        """
        arms = tuple(arms)
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
        config.validate()
        if kind == MAP_UNIT:
            self.touch(owner)
            return self._units([(config, arms)], owner, kind)[0]
        key = comparison_key(config, arms)
        with self._cond:
            if job := self._join(key, kind, owner):
                return job
        if self.store is not None and (stored := self.store.find(key)) is not None:  # outside the lock: a file
            return _stored_job(self.store, stored, owner, kind)
        parts = self._units([(unit_config(config, a), (a,)) for a in arms], owner, ARM, batch=key)
        with self._cond:
            if job := self._join(key, kind, owner):  # asked for by another session meanwhile
                return job
            job = ComparisonJob(config, arms, frozenset({owner} - {None}), kind, parts=tuple(parts), _queue=self)
            self._comparisons.append(job)
        for part in parts:
            part._parents.append(job)
        job._refresh()  # finished at once when every arm came from the store
        return job

    def submit_task(self, kind: str, args: dict, owner: str | None = None) -> TaskJob:
        """Queue a task (`transferlab.serve.tasks`: "import" or "export") for a worker and return
        its job at once; `job.result` holds what it made once it is done. The same export already
        waiting or running is joined."""
        if kind not in (IMPORT, EXPORT):
            raise ValueError(f"unknown task {kind!r}; choose from {IMPORT}, {EXPORT}")
        job = TaskJob(None, (), frozenset({owner} - {None}), kind, task_args=dict(args), _queue=self)
        with self._cond:
            if self._closed:
                raise RuntimeError("this JobQueue has been shut down; make a new one")
            if joined := self._join(job.key, kind, owner):
                return joined
            if (waiting := self._waiting.waiting(owner)) >= self.max_waiting:
                raise QueueFull(
                    f"You already have {waiting} runs waiting; one session may have at most {self.max_waiting} "
                    "on this server. Stop some, or wait for them to finish."
                )
            self._waiting.add(owner, job)
            self._cond.notify_all()
        return job

    def _units(self, units: list[tuple], owner: str | None, kind: str, batch=None) -> list[Job]:
        """Join, reuse from the store, or queue each unit (config, arms); those that must wait are
        queued together, so that a worker never takes one of a `batch` before the rest is in line.
        Refused (`QueueFull`) unless they all fit in the owner's line."""
        keys = [comparison_key(config, arms) for config, arms in units]
        stored = [self.store.find(key) if self.store is not None else None for key in keys]  # outside the lock
        with self._cond:
            if self._closed:
                raise RuntimeError("this JobQueue has been shut down; make a new one")
            found = [self._find(key, kind) for key in keys]
            new = [i for i, job in enumerate(found) if job is None and stored[i] is None]
            if new and (waiting := self._waiting.waiting(owner)) + len(new) > self.max_waiting:
                raise QueueFull(
                    f"You already have {waiting} runs waiting; one session may have at most {self.max_waiting} "
                    "on this server. Stop some (the transfer map's Stop), or wait for them to finish."
                )
            jobs = [self._join(key, kind, owner) if job else None for key, job in zip(keys, found)]
            for i in new:
                jobs[i] = Job(*units[i], frozenset({owner} - {None}), kind, batch=batch, _queue=self)
                self._waiting.add(owner, jobs[i])
            self._cond.notify_all()
        return [job or _stored_job(self.store, stored[i], owner, kind) for i, job in enumerate(jobs)]

    def position(self, job: Job) -> int | None:
        """0 when `job` is running (or next), n when n jobs start before it, None when not in the queue."""
        with self._cond:
            if job in self._running:
                return 0
            ahead = self._waiting.ahead(job)
            return None if ahead is None else max(0, ahead + len(self._running) - self.workers + 1)

    def jobs(self, owner: str | None = None, kind: str | None = None) -> list[Job]:
        """The unfinished jobs, running first, then in the order they will start; only `owner`'s
        and `kind`'s when given."""
        with self._cond:
            jobs = [c for c in self._comparisons if c.active] + [j for j in self._running + list(self._waiting)]
        jobs = [j for j in jobs if j.kind != ARM]  # an arm is shown as part of its comparison
        return [j for j in jobs if (owner is None or owner in j.owners) and (kind is None or j.kind == kind)]

    def cancel(self, owner: str, kind: str) -> int:
        """`owner` lets go of all its unfinished jobs of `kind` (a map page's old grid); returns how many."""
        jobs = self.jobs(owner, kind)
        for job in jobs:
            self._release(job, owner)
        return len(jobs)

    def touch(self, owner: str | None) -> None:
        """`owner`'s map page is still open (it calls this as it redraws)."""
        if owner:
            with self._cond:
                self._seen[owner] = time.monotonic()

    @property
    def worker_device(self) -> str | None:
        """What a worker's runs say they trained on (`device_name`), for estimates; None on Ray."""
        return None if self.ray else (gpu_name() if gpu_count() else f"CPU ({self.threads} threads)")

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (for measuring them)."""
        return [w.process.pid for w in self._procs.values() if isinstance(w, WorkerProcess) and w.alive]

    def shutdown(self, timeout: float | None = 10) -> None:
        """Stop every job (waiting and running) and end the workers."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), Turns()
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

    def _find(self, key: str, kind: str) -> Job | None:
        """The queued or running job with this key and kind (with the lock held)."""
        for job in self._comparisons + self._running + list(self._waiting):
            if job.key == key and job.kind == kind and job.active and not job.stop_event.is_set():
                return job
        return None

    def _join(self, key: str, kind: str, owner: str | None) -> Job | None:
        """The queued or running job with this key and kind, now also `owner`'s (with the lock held)."""
        job = self._find(key, kind)
        if job is not None and owner:
            for joined in (job, *getattr(job, "parts", ())):
                joined.owners = joined.owners | {owner}
            self._waiting.changed()
        return job

    def _release(self, job: Job, owner: str | None) -> None:
        """`owner` lets go of `job` (None: everyone does). The last owner to let go stops it:
        a waiting job leaves the queue, a running one stops within a batch. A comparison's owner
        lets go of its arms too; an arm another comparison shares goes on for it."""
        if isinstance(job, ComparisonJob):
            with self._cond:
                leaving = [owner] if owner is not None else sorted(job.owners) or [None]
                if owner is not None and job.owners - {owner}:
                    job.owners = job.owners - {owner}
                else:
                    job.stop_event.set()
            for part in job.parts:
                for who in leaving:
                    self._release(part, who)
            job._refresh()
            return
        with self._cond:
            if owner is not None and job.owners - {owner}:
                job.owners = job.owners - {owner}
                if self._waiting.line_of(job) == owner:  # it waits on in the line of one who still wants it
                    self._waiting.move(job, min(job.owners))
                self._waiting.changed()
                return
            job.stop_event.set()
            if not self._waiting.remove(job):
                return  # running (the coordinator passes the stop on) or already finished
        job._finish(STOPPED)

    def _settle(self, job: ComparisonJob) -> None:
        """Finish a comparison whose arms have finished (or, stopped, no longer train for it): its
        arms' outcomes merged into one, stored under its key for its owners."""
        with job._lock:
            if job._settled:
                return
            job._settled = True
        with self._cond:
            self._comparisons.remove(job)
        parts = [part.outcome for part in job.parts if part.outcome is not None]
        job.warning = " ".join(part.warning for part in job.parts if part.warning) or None
        if failed := next((part for part in job.parts if part.status == FAILED), None):
            job._finish(FAILED, error=failed.error)
            return
        try:
            outcome = Outcome.merge(job.config, parts) if parts else None
        except ValueError as error:  # arms tested on different splits
            job._finish(FAILED, error=str(error))
            return
        if outcome is None or job.stop_event.is_set() or len(parts) < len(job.parts):
            job._finish(STOPPED, outcome and replace(outcome, stopped=True))
        else:
            job.reused = all(part.reused for part in job.parts)
            _finish_with(job, outcome, self.store)

    def _abandoned(self) -> list[Job]:
        """Waiting map units whose every owner's page has not called `touch` for `abandon_after`
        seconds, taken out of their lines (with the lock held)."""
        now = time.monotonic()

        def closed(job: Job) -> bool:
            return bool(job.owners) and now - max(self._seen.get(o, now) for o in job.owners) > self.abandon_after

        gone = [job for job in self._waiting if job.kind == MAP_UNIT and closed(job)]
        for job in gone:
            self._waiting.remove(job)
            job.stop_event.set()
        return gone

    def _next(self) -> Job | None:
        with self._cond:
            while True:
                for job in self._abandoned():
                    job._finish(STOPPED)
                if self._waiting or self._closed:
                    break
                self._cond.wait()
            if self._closed:
                return None
            job = self._waiting.pop()
            self._running.append(job)
            return job

    def _worker(self, slot: int) -> WorkerProcess | RayWorker:
        worker = self._procs.get(slot)
        if worker is None or not worker.alive:
            if self.ray:
                worker = RayWorker(self.runner, self.warm, self.ray)
            else:
                worker = WorkerProcess(self.runner, self.warm, slot, self.threads)
            self._procs[slot] = worker
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

    def _run(self, job: Job, worker: WorkerProcess | RayWorker, slot: int) -> None:
        if job.stop_event.is_set():  # stopped while being handed over
            job._finish(STOPPED)
            return
        phase = "loading data and models" if job.config is not None else "starting"
        job._update(status=RUNNING, phase=phase, started=time.time())
        kind, value = worker.train(job, self.max_work, self.stop_grace, keep=job.kind == ARM)
        if kind == "done" and isinstance(job, TaskJob):
            job.result = value
            job._finish(STOPPED if value is None and job.stop_event.is_set() else DONE)
            return
        if kind == "done":
            _finish_with(job, value, self.store)
            return
        if kind in ("died", "deaf"):
            self._procs.pop(slot, None)
        if kind == "deaf":
            log.warning("worker %s did not stop job %s within %s s: replaced", slot, job.id, self.stop_grace)
            job._finish(STOPPED)
        elif kind == "died":
            why = f"exit code {value}" if value is not None else "its Ray actor was lost"
            job._finish(FAILED, error=f"the training process died ({why}; out of memory?). Try again.")
        else:
            job._finish(FAILED, error=value)


def _stored_job(store: RunStore, stored: int, owner: str | None, kind: str) -> Job:
    """A finished job for the stored comparison `stored`, now also `owner`'s."""
    if owner and kind != ARM:  # an arm is in a session's history as part of its comparison
        store.add_owner(stored, owner)
    return Job.from_store(store.load(stored), stored, owner, kind)


def _finish_with(job: Job, outcome: Outcome, store: RunStore | None) -> None:
    """End `job` with its outcome, stored (under every owner) unless it was stopped. A comparison
    that trained is done even when storing it fails: the error is logged and shown beside it."""
    if outcome.stopped:
        job._finish(STOPPED, outcome)
        return
    if store is None:
        job._finish(DONE, outcome)
        return
    owners = sorted(job.owners) if job.kind != ARM else []  # an arm is listed as part of its comparison
    try:
        job.stored = store.save(outcome, owners[0] if owners else None)
        for owner in owners[1:]:
            store.add_owner(job.stored, owner)
    except Exception as error:  # a full disk, a locked database: the result is still here to see
        log.exception("could not store job %s", job.id)
        job._update(
            warning=f"Trained, but not saved in the run store ({type(error).__name__}: {error}): "
            "it will not be in your history after a reload."
        )
    job._finish(DONE, outcome)
    if job.stored is not None and job.kind != ARM:
        for owner in job.owners - set(owners):  # sessions that joined while it was being stored
            store.add_owner(job.stored, owner)

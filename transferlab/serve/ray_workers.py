"""Workers on a Ray cluster: the job queue's workers as Ray actors, one per GPU (or per N cores).

    TRANSFERLAB_RAY_ADDRESS=ray://head:10001 make app     # the dashboard's queue on a cluster
    TRANSFERLAB_RAY_ADDRESS=local make app                # a Ray instance on this machine

A `RayWorker` is what `JobQueue` holds in place of a `WorkerProcess`, with the same `train`: it
hands the job to its actor, relays the records the actor buffers (fetched every `POLL_SECONDS`)
to the `Job` while it trains, passes a Stop on, and reports an actor that died ("died") or did not
answer a stop in time ("deaf": it is killed), so that the queue starts another. The actor runs
the worker processes' own code (`worker.handle`: runs and tasks) and keeps its feature cache between jobs.

Every machine of the cluster needs transferlab installed (`pip install -e .` from a clone); on a
local instance the actors import it from this checkout.
"""

from __future__ import annotations

import copy
import os
import threading
import time

from ..errors import ConfigError
from .worker import POLL_SECONDS, _runner, _warm, handle, request

__all__ = ["RayWorker", "ray_workers"]

CPUS_PER_WORKER = 2  # an actor without a GPU takes this many cores ($TRANSFERLAB_RAY_CPUS)
PLACE_SECONDS = 120.0  # an actor not started by then: the cluster has no room for it


class Trainer:
    """The actor: trains one job at a time, buffering its messages for the server to fetch."""

    def __init__(self, runner: str | None, warm: str | None):
        self.runner = _runner(runner)
        self.messages: list[tuple] = []
        self.lock = threading.Lock()
        self.stops: dict[int, threading.Event] = {}
        _warm(warm)

    def pid(self) -> int:
        return os.getpid()

    def run(self, request: tuple) -> tuple:
        """Train a run or do a task (`worker.request`); the last message."""
        job_id = request[1]
        stop = self.stops.setdefault(job_id, threading.Event())
        try:
            return handle(self._send, self.runner, request, stop)
        finally:
            self.stops.pop(job_id, None)

    def fetch(self) -> list[tuple]:
        with self.lock:
            messages, self.messages = self.messages, []
        return messages

    def stop(self, job_id: int) -> None:
        self.stops.setdefault(job_id, threading.Event()).set()

    def _send(self, message: tuple) -> None:
        with self.lock:
            self.messages.append(message)


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("workers on Ray need Ray: pip install 'ray==2.60.0'") from None
    return ray


_connecting = threading.Lock()


def connect(address: str) -> None:
    """Join the cluster at `address` ("local": start an instance on this machine), once."""
    ray = _ray()
    with _connecting:  # the queue's coordinator threads start their actors at once
        if ray.is_initialized():
            return
        from .._paths import PROJECT_ROOT

        local = address == "local"
        env = {"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}} if local else None
        # A local instance's processes die with the thread that started them (Linux's parent-death
        # signal), and a page's script thread ends after every rerun: start it from a thread that stays.
        ready: list = []

        def start() -> None:
            try:
                ray.init(address=None if local else address, runtime_env=env, include_dashboard=False)
                ready.append(None)
            except Exception as error:
                ready.append(error)
            threading.Event().wait()

        threading.Thread(target=start, name="transferlab-ray", daemon=True).start()
        while not ready:
            time.sleep(0.05)
        if isinstance(ready[0], Exception):
            raise ready[0]


def ray_workers(address: str) -> int:
    """How many workers the cluster at `address` holds: one per GPU, else one per
    `$TRANSFERLAB_RAY_CPUS` cores."""
    connect(address)
    resources = _ray().cluster_resources()
    if resources.get("GPU"):
        return int(resources["GPU"])
    return max(1, int(resources.get("CPU", 1)) // int(os.environ.get("TRANSFERLAB_RAY_CPUS", CPUS_PER_WORKER)))


class RayWorker:
    """The server's end of one actor; the same interface as `WorkerProcess`."""

    def __init__(self, runner: str | None, warm: str | None, address: str):
        connect(address)
        ray = _ray()
        if ray.cluster_resources().get("GPU"):
            options = {"num_gpus": 1}
        else:
            options = {"num_cpus": int(os.environ.get("TRANSFERLAB_RAY_CPUS", CPUS_PER_WORKER))}
        # Threads: `fetch` and `stop` are answered while `train` runs.
        self.actor = ray.remote(Trainer).options(max_concurrency=4, **options).remote(runner, warm)
        self.options = options
        self._alive, self._placed = True, False

    @property
    def alive(self) -> bool:
        """Whether the actor answers (asked before each job: an idle actor's machine may have gone)."""
        if self._alive and self._placed:  # one not started yet is waited for by `train`
            ray = _ray()
            try:
                ray.get(self.actor.pid.remote(), timeout=30)
            except ray.exceptions.RayActorError:
                self._alive = False
            except ray.exceptions.GetTimeoutError:
                pass  # busy (still answering the last job's stop): alive
        return self._alive

    def kill(self) -> None:
        self._alive = False
        _ray().kill(self.actor)

    def train(self, job, max_work: int | None, stop_grace: float, keep: bool = True) -> tuple[str, object]:
        """As `WorkerProcess.train`: ("done", outcome), ("failed", message), ("died", None) or ("deaf", None)."""
        ray = _ray()
        if not self._placed and (refused := self._place(job)):
            return refused
        result = self.actor.run.remote(request(job, max_work, keep))
        stop_sent = None
        try:
            while True:
                finished, _ = ray.wait([result], timeout=POLL_SECONDS)
                for message in ray.get(self.actor.fetch.remote()):
                    job._handle(message)
                if finished:
                    kind, _, value = ray.get(result)
                    # Ray hands arrays back read-only (zero-copy); a copy makes the outcome the one a
                    # worker process gives, which the page and the run store may use as they like.
                    return kind, copy.deepcopy(value)
                if job.stop_event.is_set() and stop_sent is None:
                    self.actor.stop.remote(job.id)
                    stop_sent = time.monotonic()
                elif stop_sent is not None and time.monotonic() - stop_sent > stop_grace:
                    self.kill()
                    return "deaf", None
        except ray.exceptions.RayActorError:
            self._alive = False
            return "died", None

    def _place(self, job) -> tuple[str, object] | None:
        """Wait for the actor to start (the cluster may have to find it room); None once it has.
        A job stopped meanwhile ends ("deaf"); an actor the cluster cannot place within
        `PLACE_SECONDS` fails the job with what to do, and is dropped."""
        ray = _ray()
        job._update(phase="waiting for the Ray cluster to start a worker")
        started, deadline = self.actor.pid.remote(), time.monotonic() + PLACE_SECONDS
        try:
            while not ray.wait([started], timeout=POLL_SECONDS)[0]:
                if job.stop_event.is_set() or time.monotonic() > deadline:
                    self.kill()
                    if job.stop_event.is_set():
                        return "deaf", None
                    need = ", ".join(f"{n} {what.removeprefix('num_')}" for what, n in self.options.items())
                    return "failed", (
                        f"the Ray cluster found no room for a worker ({need}) within {PLACE_SECONDS:.0f} s: add a "
                        "machine to it, or give each worker fewer cores ($TRANSFERLAB_RAY_CPUS)"
                    )
            ray.get(started)
        except ray.exceptions.RayActorError:
            self._alive = False
            return "died", None
        self._placed = True
        job._update(phase="loading data and models")
        return None

"""A training worker process: the page server hands it comparisons, it sends back records.

Started by `JobQueue` as `python -m transferlab.serve.worker FD [--runner MODULE:FUNCTION] [--warm DATASET:BACKBONE]
[--threads N]`,
where FD is its end of a socket pair. Training here, not in the page server, is what keeps a room of
open pages from slowing every run down: the server's interpreter only serves pages, and this
process has the CPU cores (or the GPU) to itself.

Messages (tuples over a `multiprocessing.connection.Connection`):
    server -> worker: ("job", job_id, config, arms, max_work, keep), ("task", job_id, kind, args),
                      ("stop", job_id)
    worker -> server: ("start", job_id, arm, total_steps, device),
                      ("progress", job_id, arm, step, images_seen), ("end", job_id, arm, step),
                      ("phase", job_id, text), ("warning", job_id, text),
                      ("record", job_id, Record), ("done", job_id, Outcome or a task's result),
                      ("failed", job_id, message)

A "task" is work besides training (an import, an export: `transferlab.serve.tasks`); its progress
comes as "start" and "progress" of an arm named after its kind.

A stop request is read by a thread of its own, so it reaches the training loop within one batch
(the loop checks it between batches and while caching features); the server kills a worker that
does not answer in time and starts another.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection

POLL_SECONDS = 0.2  # how often the server looks at its worker and the stop flag
PROGRESS_EVERY = 0.2  # seconds between progress messages: a bar that moves, not a flood

log = logging.getLogger("transferlab.serve.worker")


def _sink(send: Callable[[tuple], None], job_id: int):
    from ..device import device_name
    from ..training.callbacks import Callback

    class Sink(Callback):
        """Forwards a run's events to the server, progress at most every `PROGRESS_EVERY` seconds."""

        def __init__(self):
            self.last = 0.0

        def on_run_start(self, run) -> None:
            send(("start", job_id, run.arm.name, run.plan.steps, device_name(run.device)))

        def on_batch_end(self, run) -> None:
            now = time.monotonic()
            if now - self.last >= PROGRESS_EVERY or run.step == run.plan.steps:
                self.last = now
                send(("progress", job_id, run.arm.name, run.step, run.images_seen))

        def on_record(self, run, record) -> None:
            send(("record", job_id, record))
            if record.split == "val" and record.step == run.plan.steps:
                send(("phase", job_id, "final test on the whole test split"))

        def on_run_end(self, run) -> None:
            send(("end", job_id, run.arm.name, run.step))

    return Sink()


def _runner(spec: str | None):
    if not spec:
        from ..training.comparison import compare

        return compare
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _warm(spec: str | None) -> None:
    """Load the default dataset and weights before the first job asks for them."""
    if not spec:
        return
    from ..data.registry import dataset_status, load_dataset
    from ..models.registry import backbone_status, create_backbone

    dataset, _, backbone = spec.partition(":")
    if dataset_status(dataset)[0]:
        load_dataset(dataset)
    if backbone_status(backbone)[0]:
        create_backbone(backbone, 10)


def _keep(result, key: str) -> str | None:
    """Keep the finetune arm's network on disk so that the page can offer it for download; what
    went wrong, if anything (a full disk costs the download, never the comparison)."""
    from .export import keep_model

    try:
        keep_model(result, key)
    except Exception as error:
        log.warning("could not keep the model of %s: %s", key, error)
        return f"Trained, but its model could not be kept for download ({type(error).__name__}: {error})."
    return None


def serve(conn: Connection, runner_spec: str | None = None, warm: str | None = None) -> None:
    """Train the jobs that arrive on `conn`, one at a time, until the server goes away."""
    jobs: queue.Queue = queue.Queue()
    stops: dict[int, threading.Event] = {}

    def listen():  # the server's messages, read while the main thread trains
        try:
            while True:
                message = conn.recv()
                if message[0] in ("job", "task"):
                    stops.setdefault(message[1], threading.Event())
                    jobs.put(message)
                elif message[0] == "stop":
                    stops.setdefault(message[1], threading.Event()).set()
        except (EOFError, OSError):
            os._exit(0)  # the server is gone: so is the reason to train

    threading.Thread(target=listen, name="transferlab-worker-listen", daemon=True).start()
    runner = _runner(runner_spec)
    _warm(warm)
    while True:
        request = jobs.get()
        message = handle(conn.send, runner, request, stops[request[1]])
        stops.pop(request[1], None)
        conn.send(message)


def request(job, max_work: int | None, keep: bool) -> tuple:
    """The message that hands `job` to a worker: a run to train, or a task (`job.task_args`)."""
    if job.config is None:
        return ("task", job.id, job.kind, job.task_args)
    return ("job", job.id, job.config, job.arms, max_work, keep)


def handle(send, runner, request: tuple, stop: threading.Event) -> tuple:
    """Do one `request` (see `request`); returns the last message, as `run_job` does."""
    if request[0] == "task":
        _, job_id, kind, args = request
        return run_task(send, job_id, kind, args, stop)
    _, job_id, config, arms, max_work, keep = request
    return run_job(send, runner, job_id, config, arms, max_work, keep, stop)


def run_task(send, job_id: int, kind: str, args: dict, stop: threading.Event) -> tuple:
    """Do one task of `transferlab.serve.tasks`, its progress sent as an arm named `kind`'s;
    ("done", job_id, result or None when stopped) or ("failed", job_id, message)."""
    import torch

    from ..device import device_name
    from ..errors import StopTraining, TransferlabError
    from .tasks import TASKS

    last = [0.0, None]  # when progress was last sent; the total, once known

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if last[1] is None:
            send(("start", job_id, kind, total, device_name(torch.device("cpu"))))
            last[1] = total
        if now - last[0] >= PROGRESS_EVERY or done == total:
            last[0] = now
            send(("progress", job_id, kind, done, done))

    try:
        return ("done", job_id, TASKS[kind](**args, progress=progress, stop=stop))
    except StopTraining:
        return ("done", job_id, None)
    except TransferlabError as error:
        return ("failed", job_id, str(error))
    except Exception as error:
        log.exception("task %s (%s) failed", job_id, kind)
        return ("failed", job_id, f"{type(error).__name__}: {error}")


def run_job(send, runner, job_id: int, config, arms, max_work, keep: bool, stop: threading.Event) -> tuple:
    """Train one job, sending its messages through `send`; returns the last: ("done", job_id,
    Outcome) or ("failed", job_id, message). The worker processes and the Ray actors both run it."""
    from ..errors import TransferlabError
    from ..training.outcome import Outcome, comparison_key

    started = time.perf_counter()
    try:
        send(("phase", job_id, "loading data and models"))
        result = runner(config, arms, callbacks=[_sink(send, job_id)], stop=stop, max_work=max_work)
        message = ("done", job_id, Outcome.of(result, elapsed=time.perf_counter() - started))
        if keep and (warning := _keep(result, comparison_key(config, tuple(arms)))):
            send(("warning", job_id, warning))
        return message
    except TransferlabError as error:  # bad settings, missing data, a diverged loss: the message says what to do
        return ("failed", job_id, str(error))
    except Exception as error:  # a bug, or out of memory: say what, keep serving
        log.exception("job %s failed", job_id)
        return ("failed", job_id, f"{type(error).__name__}: {error}")


class WorkerProcess:
    """The server's end: one worker process and its socket. `train` relays one job's messages to
    the `Job` (its `stop_event` and `_handle`) until the job ends."""

    def __init__(self, runner: str | None, warm: str | None, slot: int, threads: int | None = None):
        env = dict(os.environ)
        if gpu_count():  # one GPU per worker, round robin when there are more workers than GPUs
            env["CUDA_VISIBLE_DEVICES"] = str(slot % gpu_count())
        self.conn, child = Pipe(duplex=True)
        command = [sys.executable, "-m", "transferlab.serve.worker", str(child.fileno())]
        command += ["--runner", runner] if runner else []
        command += ["--warm", warm] if warm else []
        command += ["--threads", str(threads)] if threads else []
        self.process = subprocess.Popen(command, pass_fds=(child.fileno(),), env=env)
        child.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.conn.close()

    def train(self, job, max_work: int | None, stop_grace: float, keep: bool = True) -> tuple[str, object]:
        """Hand `job` to the process and relay its messages to the job until it ends. Returns
        ("done", outcome), ("failed", message), ("died", exit code) or ("deaf", None): a stop
        not answered within `stop_grace` seconds, after which the process is killed. With `keep`,
        the worker keeps the finetune arm's model for download."""
        self.conn.send(request(job, max_work, keep))
        stop_sent = None
        while True:
            try:
                message = self.conn.recv() if self.conn.poll(POLL_SECONDS) else None
            except (EOFError, OSError):
                message = None
            if message is None and not self.alive:
                return "died", self.process.wait()
            if job.stop_event.is_set() and stop_sent is None:
                self.conn.send(("stop", job.id))
                stop_sent = time.monotonic()
            elif stop_sent is not None and time.monotonic() - stop_sent > stop_grace:
                self.kill()
                return "deaf", None
            if message is None:
                continue
            if message[0] in ("done", "failed"):
                return message[0], message[2]
            if message[1] == job.id:
                job._handle(message)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m transferlab.serve.worker", description=__doc__.splitlines()[0])
    parser.add_argument("fd", type=int, help="this process's end of the socket pair to the server")
    parser.add_argument("--runner", help="MODULE:FUNCTION with compare's signature (tests use stand-ins)")
    parser.add_argument("--warm", help="DATASET:BACKBONE to load before the first job")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (the server splits the cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="transferlab worker %(process)d: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    serve(Connection(args.fd), args.runner, args.warm)


if __name__ == "__main__":
    main()

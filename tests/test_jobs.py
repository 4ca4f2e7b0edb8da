"""The job queue the dashboard's sessions share: order, position, stop, failures, isolation."""

import threading
import time
from dataclasses import replace

import pytest

from transferlab import ExperimentConfig, compare
from transferlab.jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED, JobQueue


@pytest.fixture
def queue():
    q = JobQueue()
    yield q
    q.shutdown()


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def gated_runner(gate: threading.Event):
    """compare(), but each job first waits for `gate`: holds the worker so the queue can be inspected."""

    def run(config, arms, callbacks, stop):
        gate.wait(30)
        return compare(config, arms, callbacks=callbacks, stop=stop)

    return run


def test_jobs_run_one_at_a_time_in_submission_order(queue, tiny):
    jobs = [queue.submit(replace(tiny, seed=s)) for s in range(3)]
    assert all(j.wait(60) for j in jobs)
    assert [j.status for j in jobs] == [DONE] * 3
    for earlier, later in zip(jobs, jobs[1:]):
        assert earlier.finished <= later.started  # never two at once
    assert [j.result.config.seed for j in jobs] == [0, 1, 2]


def test_a_finished_job_holds_curves_result_and_progress(queue, tiny):
    job = queue.submit(tiny)
    assert job.history().empty and list(job.history().columns)[:3] == ["arm", "epoch", "step"]
    assert job.wait(60) and job.status == DONE and job.error is None
    h = job.history()
    assert set(h.arm) == {"finetune", "scratch"} and (h.split == "eval").sum() == 2 * tiny.epochs
    assert job.progress == 1.0 and job.images_per_second > 0 and job.device.startswith("CPU")
    assert job.position is None and not job.active
    assert job.result.verdict().startswith(("finetune wins", "scratch wins"))
    # The networks are let go (a class's sessions would pile them up); predictions stay.
    assert job.result.runs["finetune"].model is None
    assert job.result.runs["finetune"].test_predictions is not None


def test_keep_models_keeps_the_trained_networks(tiny):
    q = JobQueue(keep_models=True)
    try:
        job = q.submit(tiny, arms=["finetune"])
        assert job.wait(60) and job.result.runs["finetune"].model is not None
    finally:
        q.shutdown()


def test_position_counts_the_jobs_ahead_and_a_waiting_job_can_leave(tiny):
    gate = threading.Event()
    queue = JobQueue(runner=gated_runner(gate))
    try:
        a, b, c = (queue.submit(replace(tiny, seed=s)) for s in range(3))
        wait_until(lambda: a.status == RUNNING)
        assert (a.position, b.position, c.position) == (0, 1, 2)
        assert (b.status, c.status) == (QUEUED, QUEUED)
        assert queue.jobs() == [a, b, c]
        b.stop()  # leaves the queue at once, never trains
        assert b.status == STOPPED and b.result is None and c.position == 1
        gate.set()
        assert a.wait(60) and c.wait(60)
        assert (a.status, b.status, c.status) == (DONE, STOPPED, DONE)
        assert b.started is None and queue.jobs() == []
    finally:
        gate.set()
        queue.shutdown()


def test_stop_ends_a_running_job_within_a_batch(queue, tiny):
    job = queue.submit(replace(tiny, epochs=500))
    wait_until(lambda: len(job.records()) > 0)
    job.stop()
    assert job.wait(30) and job.status == STOPPED
    assert job.result.stopped and job.result.verdict().startswith("Stopped")
    assert job.history().epoch.max() < 500
    # The worker goes on with the next job.
    assert queue.submit(tiny).wait(60)


def test_a_failure_keeps_its_message_and_the_worker_goes_on(queue, tiny):
    bad = queue.submit(replace(tiny, per_class=1000))  # test_blobs has 40 training images per class
    good = queue.submit(tiny)
    assert bad.wait(60) and good.wait(60)
    assert bad.status == FAILED and bad.result is None
    assert "only 40 training images" in bad.error and "per_class <= 40" in bad.error
    assert good.status == DONE


def test_an_unexpected_error_is_reported_with_its_type():
    def broken(config, arms, callbacks, stop):
        raise RuntimeError("CUDA out of memory")

    q = JobQueue(runner=broken)
    try:
        job = q.submit(ExperimentConfig())
        assert job.wait(10) and job.status == FAILED and job.error == "RuntimeError: CUDA out of memory"
    finally:
        q.shutdown()


def test_two_sessions_see_only_their_own_jobs(tiny):
    gate = threading.Event()
    queue = JobQueue(runner=gated_runner(gate))
    try:
        # Each "session" keeps its own list, as the dashboard keeps its jobs in st.session_state.
        alice = [queue.submit(replace(tiny, epochs=2), owner="alice")]
        bob = [queue.submit(replace(tiny, epochs=3), owner="bob")]
        alice.append(queue.submit(replace(tiny, epochs=2, seed=1), owner="alice"))
        assert queue.jobs("alice") == alice and queue.jobs("bob") == bob
        assert bob[0].position == 1 and alice[1].position == 2  # one shared line for the device
        gate.set()
        assert all(j.wait(60) for j in alice + bob)
        # Each job's stream holds its own records only.
        assert all(j.history().epoch.max() == 2 for j in alice) and bob[0].history().epoch.max() == 3
        assert len(bob[0].records()) == 2 * (2 * 3 + 1)
    finally:
        gate.set()
        queue.shutdown()


def test_shutdown_stops_waiting_and_running_jobs(tiny):
    q = JobQueue()
    running = q.submit(replace(tiny, epochs=500))
    waiting = q.submit(tiny)
    wait_until(lambda: running.status == RUNNING)
    q.shutdown()
    assert running.wait(30) and running.status == STOPPED and waiting.status == STOPPED
    with pytest.raises(RuntimeError, match="shut down"):
        q.submit(tiny)

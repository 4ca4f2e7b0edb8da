"""The job queue a server's sessions share: worker processes, order, stop, failures, joining, the store."""

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from tests import verdicts
from tests.waiting import wait_until
from transferlab.serve.job import DONE, FAILED, QUEUED, RUNNING, STOPPED
from transferlab.serve.jobs import JobQueue
from transferlab.training.store import RunStore


@pytest.fixture(scope="module")
def queue():
    """One worker process for the module's tests: starting one costs a few seconds of imports."""
    q = JobQueue(workers=1)
    yield q
    q.shutdown()


def long(tiny, seed=0):
    """A tiny comparison that trains for minutes unless stopped."""
    return replace(tiny, epochs=100_000, seed=seed)


def test_jobs_run_one_at_a_time_in_submission_order(queue, tiny):
    jobs = [queue.submit(replace(tiny, seed=s)) for s in range(3)]
    assert all(j.wait(120) for j in jobs)
    assert [j.status for j in jobs] == [DONE] * 3
    for earlier, later in zip(jobs, jobs[1:]):
        assert earlier.finished <= later.started  # one worker: never two at once
    assert [j.outcome.config.seed for j in jobs] == [0, 1, 2]


def test_training_happens_in_a_worker_process_and_comes_back_as_plain_data(queue, tiny):
    job = queue.submit(replace(tiny, seed=10, lr=3e-2))  # at this rate scratch learns and finetune does not
    assert job.history().empty and list(job.history().columns)[:3] == ["arm", "epoch", "step"]
    assert job.wait(120) and job.status == DONE and job.error is None
    h = job.history()
    assert set(h.arm) == {"finetune", "scratch"} and (h.split == "val").sum() == 2 * tiny.epochs
    assert job.progress == 1.0 and job.images_per_second > 0 and job.device.startswith("CPU")
    assert job.position is None and not job.active
    outcome = job.outcome
    # The verdict names the winner, the difference and the interval of the answers that came back.
    correct = {arm: outcome.predictions[arm] == outcome.labels for arm in ("finetune", "scratch")}
    assert outcome.verdict().startswith("scratch beats finetune by ")
    assert verdicts.check_all(outcome.verdict(), correct) == [("scratch", "finetune")]
    # A finished job holds numbers and a few images, never a network or a dataset.
    for value in vars(outcome).values():
        assert isinstance(value, str | bool | float | tuple | dict | pd.DataFrame | np.ndarray | type(tiny))
        assert not isinstance(value, torch.nn.Module | torch.Tensor)
    assert outcome.labels.shape == outcome.predictions["finetune"].shape
    images, labels, preds = outcome.mistakes["scratch"]
    assert images.dtype == np.uint8 and len(images) <= 12 and (labels != preds).all()
    assert queue.jobs() == []  # the queue keeps no finished job


def test_position_counts_the_jobs_ahead_and_a_waiting_job_can_leave(queue, tiny):
    a, b, c = queue.submit(long(tiny, 20)), queue.submit(replace(tiny, seed=21)), queue.submit(replace(tiny, seed=22))
    wait_until(lambda: a.status == RUNNING)
    # Positions count runs: every arm of a comparison is one (a's scratch arm waits too).
    assert (a.position, b.position, c.position) == (0, 2, 4)
    assert (b.status, c.status) == (QUEUED, QUEUED) and queue.jobs() == [a, b, c]
    b.stop()  # leaves the queue at once, never trains
    assert b.status == STOPPED and b.outcome is None and c.position == 2
    a.stop()
    assert a.wait(30) and c.wait(120)
    assert (a.status, b.status, c.status) == (STOPPED, STOPPED, DONE)
    assert b.started is None and queue.jobs() == []


def test_stop_reaches_the_worker_within_a_batch(queue, tiny):
    job = queue.submit(long(tiny, 30))
    wait_until(lambda: job.progress > 0)
    asked = time.monotonic()
    job.stop()
    assert job.wait(30) and job.status == STOPPED
    assert time.monotonic() - asked < 5  # the worker's own answer, not the grace period's kill
    assert job.outcome.stopped and job.outcome.verdict().startswith("Stopped")
    assert (job.outcome.table.steps < 100_000 * 4).all()
    assert queue.submit(replace(tiny, seed=31)).wait(120)  # the same worker goes on


def test_a_failure_keeps_its_message_and_the_worker_goes_on(queue, tiny):
    bad = queue.submit(replace(tiny, per_class=1000))  # test_blobs has 40 training images per class
    good = queue.submit(replace(tiny, seed=40))
    assert bad.wait(120) and good.wait(120)
    assert bad.status == FAILED and bad.outcome is None
    assert "only 35 training images" in bad.error and "per_class <= 35" in bad.error  # 40, less 5 for validation
    assert good.status == DONE


def test_a_loss_that_becomes_nan_fails_the_job_with_what_to_lower(queue, tiny):
    job = queue.submit(replace(tiny, lr=1e30, seed=50))
    assert job.wait(120) and job.status == FAILED
    assert "loss became NaN or infinite at step" in job.error and "Lower the learning rate (now 1e+30)" in job.error
    assert job.history().empty or job.history().loss.notna().all()  # never a chart of NaN


def test_a_job_beyond_the_servers_cap_is_refused_with_what_to_change(tiny):
    q = JobQueue(workers=1, max_work=100)
    try:
        job = q.submit(replace(tiny, per_class=10, epochs=3))  # 40 images x 3 epochs = 120
        assert job.wait(120) and job.status == FAILED
        assert "this server allows 100" in job.error and "at most 2 epochs" in job.error
    finally:
        q.shutdown()


def test_sessions_see_their_own_jobs_and_the_same_comparison_trains_once(queue, tiny):
    holder = queue.submit(long(tiny, 60), owner="teacher")
    wait_until(lambda: holder.status == RUNNING)
    alice = queue.submit(replace(tiny, seed=61), owner="alice")
    bob = queue.submit(replace(tiny, seed=61), owner="bob")  # the same comparison
    carol = queue.submit(replace(tiny, seed=62), owner="carol")
    assert bob is alice and alice.owners == {"alice", "bob"}
    assert queue.jobs("alice") == [alice] and queue.jobs("carol") == [carol] and queue.jobs("teacher") == [holder]
    # One student leaving a shared comparison does not stop it for the other.
    alice.stop(owner="alice")
    assert alice.status == QUEUED and alice.owners == {"bob"} and queue.jobs("alice") == []
    holder.stop()
    assert alice.wait(120) and carol.wait(120) and alice.status == DONE
    assert len(alice.records()) == 2 * (2 * tiny.epochs + 1)


def test_finished_comparisons_are_stored_and_come_back_at_once(tmp_path, tiny):
    store = RunStore(tmp_path / "runs.sqlite")
    q = JobQueue(workers=1, store=store)
    try:
        first = q.submit(tiny, owner="alice")
        assert first.wait(120) and first.status == DONE and first.stored is not None
        again = q.submit(tiny, owner="bob")  # a second session, the same comparison
        assert again.status == DONE and again.stored == first.stored and again is not first
        assert again.outcome.verdict() == first.outcome.verdict()
        # The store holds the comparison, listed for its sessions, and its two arms, shared by key.
        assert list(store.comparisons(owner="bob").id) == [first.stored] and len(store) == 3
        other = q.submit(replace(tiny, seed=1), owner="alice")
        assert other.active and not other.reused and other.wait(120)  # a new comparison trains
        assert set(store.comparisons(owner="alice").id) == {first.stored, other.stored}
    finally:
        q.shutdown()


def test_an_unexpected_error_is_reported_with_its_type(tiny):
    q = JobQueue(workers=1, runner="tests.job_runners:broken")
    try:
        job = q.submit(tiny)
        assert job.wait(60) and job.status == FAILED and job.error == "RuntimeError: CUDA out of memory"
    finally:
        q.shutdown()


def test_a_worker_that_dies_is_replaced_and_its_job_fails(tiny):
    q = JobQueue(workers=1, runner="tests.job_runners:dies_on_seed_13")
    try:
        doomed, after = q.submit(replace(tiny, seed=13)), q.submit(tiny)
        assert doomed.wait(120) and doomed.status == FAILED and "training process died" in doomed.error
        assert after.wait(120) and after.status == DONE  # a new worker took over
    finally:
        q.shutdown()


def test_a_worker_that_ignores_a_stop_is_killed_and_replaced(tiny):
    q = JobQueue(workers=1, runner="tests.job_runners:deaf_on_seed_7", stop_grace=1.0)
    try:
        deaf, after = q.submit(replace(tiny, seed=7)), q.submit(tiny)
        wait_until(lambda: deaf.status == RUNNING)
        deaf.stop()
        assert deaf.wait(15) and deaf.status == STOPPED
        assert after.wait(120) and after.status == DONE
    finally:
        q.shutdown()


def test_two_workers_train_a_comparisons_two_arms_at_once(tiny):
    q = JobQueue(workers=2)
    try:
        a, b = q.submit(long(tiny, 70)), q.submit(long(tiny, 71))
        wait_until(lambda: all(part.status == RUNNING for part in a.parts))
        wait_until(lambda: all(part.progress > 0 for part in a.parts))  # both arms training
        assert a.status == RUNNING and a.progress > 0 and a.phase == "training"
        assert a.position == 0 and b.position == 1 and b.status == QUEUED
        a.stop(), b.stop()
        assert a.wait(30) and b.wait(30) and a.status == b.status == STOPPED
    finally:
        q.shutdown()


def test_shutdown_stops_waiting_and_running_jobs(tiny):
    q = JobQueue(workers=1)
    running, waiting = q.submit(long(tiny)), q.submit(tiny)
    wait_until(lambda: running.status == RUNNING)
    q.shutdown()
    assert running.wait(30) and running.status == STOPPED and waiting.status == STOPPED
    with pytest.raises(RuntimeError, match="shut down"):
        q.submit(tiny)

"""The queue's fairness between sessions, its kinds and caps, and the races it closes.

Each test here fails on the queue of 2026-12-02 (one first-come line, owners changed under two
locks, a failed save reported as a failed comparison, every CPU worker on every core).
"""

import os
import random
import threading
import time
from dataclasses import replace

import pytest

from transferlab.errors import ConfigError
from transferlab.serve.export import kept_model
from transferlab.serve.jobs import COMPARISON, DONE, MAP_UNIT, QUEUED, RUNNING, STOPPED, JobQueue, QueueFull
from transferlab.serve.turns import Turns
from transferlab.training.store import RunStore


def wait_until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def long(tiny, seed):
    """A tiny comparison that trains for minutes unless stopped."""
    return replace(tiny, epochs=100_000, seed=seed)


@pytest.fixture
def queue():
    q = JobQueue(workers=1)
    yield q
    q.shutdown()


def test_a_map_does_not_wait_ahead_of_another_sessions_run(queue, tiny):
    holder = queue.submit(long(tiny, 100), owner="teacher")
    wait_until(lambda: holder.status == RUNNING)
    units = [queue.submit(replace(tiny, seed=s), ("finetune",), "alice", MAP_UNIT) for s in range(101, 106)]
    run = queue.submit(replace(tiny, seed=110), owner="bob")
    # Bob's one Run starts after one of Alice's units, not after all five.
    assert [u.position for u in units] == [1, 3, 4, 5, 6] and run.position == 2
    assert queue.jobs(kind=MAP_UNIT) == units and queue.jobs("bob") == [run]
    holder.stop()
    assert all(job.wait(120) for job in [*units, run])
    starts = sorted([*units, run], key=lambda job: job.started)
    assert starts[:2] == [units[0], run] and starts[2:] == units[1:]


def test_a_session_may_have_only_so_many_runs_waiting(tiny):
    q = JobQueue(workers=1, max_waiting=2)
    try:
        holder = q.submit(long(tiny, 120), owner="alice")
        wait_until(lambda: holder.status == RUNNING)
        first, second = (q.submit(replace(tiny, seed=s), ("finetune",), "alice", MAP_UNIT) for s in (121, 122))
        with pytest.raises(QueueFull, match="You already have 2 runs waiting.*Stop some"):
            q.submit(replace(tiny, seed=123), ("finetune",), "alice", MAP_UNIT)
        assert q.submit(replace(tiny, seed=121), ("finetune",), "bob", MAP_UNIT) is first  # joining is free
        assert q.submit(replace(tiny, seed=124), owner="bob").status == QUEUED  # another session's line
        holder.stop()
        assert first.wait(120) and second.wait(120)
    finally:
        q.shutdown()


def test_a_page_cancels_its_own_units_and_a_closed_pages_units_go(tiny):
    q = JobQueue(workers=1, abandon_after=0.5)
    try:
        holder = q.submit(long(tiny, 130), owner="alice")
        wait_until(lambda: holder.status == RUNNING)
        old = [q.submit(replace(tiny, seed=s), ("finetune",), "alice", MAP_UNIT) for s in (131, 132)]
        shared = q.submit(replace(tiny, seed=131), ("finetune",), "bob", MAP_UNIT)
        # A new grid (or Stop) lets go of the old units; Alice's comparison is not a map unit and stays.
        assert q.cancel("alice", MAP_UNIT) == 2
        assert old[1].status == STOPPED and holder.status == RUNNING
        assert shared is old[0] and shared.status == QUEUED and shared.owners == {"bob"}  # Bob still wants it
        assert q.jobs("alice") == [holder] and q.jobs("bob", MAP_UNIT) == [shared]
        # Bob's map page closes: no more touches, and after the grace its units leave the queue.
        time.sleep(0.6)
        holder.stop()
        assert shared.wait(30) and shared.status == STOPPED and shared.started is None
    finally:
        q.shutdown()


def test_models_are_kept_only_for_comparisons(queue, tiny):
    config = replace(tiny, seed=140)
    unit = queue.submit(config, ("finetune",), "alice", MAP_UNIT)
    comparison = queue.submit(config, ("finetune",), "alice", COMPARISON)  # same key, other kind
    assert unit is not comparison and comparison.kind == COMPARISON
    assert unit.wait(120) and comparison.wait(120) and unit.status == comparison.status == DONE
    assert comparison.key == unit.key and kept_model(comparison.key) is not None
    kept_model(comparison.key).unlink()
    again = queue.submit(replace(tiny, seed=141), ("finetune",), "alice", MAP_UNIT)
    assert again.wait(120) and kept_model(again.key) is None


def test_owners_change_only_under_the_queues_lock(queue, tiny):
    holder = queue.submit(long(tiny, 150), owner="alice")
    joined = queue.submit(long(tiny, 150), owner="bob")
    assert joined is holder
    # While the queue's lock is held (a session joining, say), letting go must wait for it.
    with queue._cond:
        leaving = threading.Thread(target=holder.stop, args=("alice",))
        leaving.start()
        leaving.join(0.3)
        assert leaving.is_alive() and holder.owners == {"alice", "bob"}
    leaving.join(5)
    assert holder.owners == {"bob"} and holder.active
    holder.stop()
    assert holder.wait(30)


class BrokenStore(RunStore):
    def save(self, outcome, owner=None):
        raise OSError(28, "No space left on device")


def test_a_comparison_that_trained_is_done_even_when_storing_it_fails(tmp_path, tiny):
    q = JobQueue(workers=1, store=BrokenStore(tmp_path / "runs.sqlite"))
    try:
        job = q.submit(replace(tiny, seed=160), owner="alice")
        assert job.wait(120) and job.status == DONE and job.outcome is not None and job.stored is None
        assert "not saved in the run store (OSError" in job.warning and "No space left" in job.warning
    finally:
        q.shutdown()


def test_settings_that_cannot_run_are_refused_when_submitted(queue, tiny):
    with pytest.raises(ConfigError, match="steps"):
        queue.submit(replace(tiny, steps=10, epochs=2), owner="alice")
    assert queue.jobs("alice") == []


def test_cpu_workers_split_the_cores(tiny):
    q = JobQueue(workers=2)
    try:
        a, b = q.submit(replace(tiny, seed=170)), q.submit(replace(tiny, seed=171))
        assert a.wait(120) and b.wait(120)
        threads = max(1, (os.cpu_count() or 1) // 2)
        assert a.device == b.device == f"CPU ({threads} threads)"
    finally:
        q.shutdown()


def test_turns_say_in_advance_the_order_they_serve():
    rng = random.Random(0)
    for _ in range(50):
        turns, jobs = Turns(), []
        for i in range(rng.randrange(1, 30)):
            jobs.append(i)
            turns.add(rng.choice(["alice", "bob", "carol", None]), i)
            if rng.random() < 0.2:  # some served while others still arrive
                served = turns.pop()
                jobs.remove(served)
        expected = list(turns)
        assert sorted(turns.ahead(j) for j in jobs) == list(range(len(jobs)))
        assert [turns.ahead(j) for j in expected] == list(range(len(expected)))
        assert [turns.pop() for _ in expected] == expected and turns.pop() is None

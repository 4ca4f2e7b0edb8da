"""The queue's fairness between sessions, its kinds and caps, and the races it closes.

Each test here fails on the queue of 2026-12-02 (one first-come line, owners changed under two
locks, a failed save reported as a failed comparison, every CPU worker on every core).
"""

import os
import random
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

from tests.waiting import wait_until
from transferlab import compare
from transferlab.errors import ConfigError
from transferlab.serve.export import kept_model
from transferlab.serve.job import COMPARISON, DONE, MAP_UNIT, QUEUED, RUNNING, STOPPED
from transferlab.serve.jobs import JobQueue, QueueFull
from transferlab.serve.turns import Turns
from transferlab.training.outcome import Outcome
from transferlab.training.store import RunStore


def long(tiny, seed):
    """A tiny comparison that trains for minutes unless stopped."""
    return replace(tiny, epochs=100_000, seed=seed)


@pytest.fixture
def queue():
    q = JobQueue(workers=1)
    yield q
    q.shutdown()


def test_a_map_does_not_wait_ahead_of_another_sessions_run(queue, tiny):
    holder = queue.submit(long(tiny, 100), ("finetune",), owner="teacher")
    wait_until(lambda: holder.status == RUNNING)
    units = [queue.submit(replace(tiny, seed=s), ("finetune",), "alice", MAP_UNIT) for s in range(101, 106)]
    run = queue.submit(replace(tiny, seed=110), owner="bob")
    # Bob's Run and Alice's map take turns, and his two arms are one turn: his verdict waits for one
    # of her units, not five (his position: the teacher's running unit and her first).
    assert [u.position for u in units] == [1, 4, 5, 6, 7] and run.position == 2
    assert queue.jobs(kind=MAP_UNIT) == units and queue.jobs("bob") == [run]
    holder.stop()
    assert all(job.wait(120) for job in [*units, run])
    finetune, scratch = run.parts
    assert units[0].finished <= finetune.started <= scratch.started <= units[1].started
    assert run.finished <= units[1].finished


def test_a_session_may_have_only_so_many_runs_waiting(tiny):
    q = JobQueue(workers=1, max_waiting=2)
    try:
        holder = q.submit(long(tiny, 120), ("finetune",), owner="alice")
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
        holder = q.submit(long(tiny, 130), ("finetune",), owner="alice")
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
    names = ["alice", "bob", "carol", None]
    for _ in range(50):
        turns, jobs = Turns(), []
        for i in range(rng.randrange(1, 30)):
            owner = rng.choice(names)
            job = SimpleNamespace(i=i, owners=frozenset({owner, *rng.sample(names[:3], rng.randrange(3))} - {None}))
            jobs.append(job)
            turns.add(owner, job)
            if rng.random() < 0.2:  # some served while others still arrive
                jobs.remove(turns.pop())
        expected = list(turns)
        assert sorted(turns.ahead(j) for j in jobs) == list(range(len(jobs)))
        assert [turns.ahead(j) for j in expected] == list(range(len(expected)))
        assert [turns.pop() for _ in expected] == expected and turns.pop() is None


def test_a_shared_run_goes_first_and_counts_as_a_turn_for_everyone_it_serves():
    turns = Turns()
    scratch = SimpleNamespace(owners=frozenset(f"s{k}" for k in range(4)))
    finetune = [SimpleNamespace(owners=frozenset({f"s{k}"})) for k in range(4)]
    turns.add("s0", finetune[0])
    turns.add("s0", scratch)
    for k in range(1, 4):
        turns.add(f"s{k}", finetune[k])
    map_units = [SimpleNamespace(owners=frozenset({"m"})) for _ in range(3)]
    for unit in map_units:
        turns.add("m", unit)
    # Round one: the scratch arm (a turn for all four), the map's first unit. Round two: each
    # finetune arm in the order the sessions came, then the map's second unit; and so on.
    assert list(turns) == [scratch, map_units[0], *finetune, *map_units[1:]]


def test_comparisons_at_every_depth_train_scratch_once(tmp_path, tiny):
    store = RunStore(tmp_path / "runs.sqlite")
    q = JobQueue(workers=1, store=store)
    try:
        holder = q.submit(long(tiny, 180), owner="teacher")
        wait_until(lambda: holder.status == RUNNING)
        config = replace(tiny, seed=181, lr=3e-2)
        comparisons = [q.submit(replace(config, freeze_depth=k), owner=f"student{k}") for k in range(4)]
        scratch = {id(c.parts[1]) for c in comparisons}
        assert len(scratch) == 1 and comparisons[0].parts[1].owners == {f"student{k}" for k in range(4)}
        # Five of their runs wait, not eight: four finetune arms and one scratch arm (and the teacher's
        # scratch). The shared scratch goes first, then the finetune arms in the order they came.
        assert len(q._waiting) == 1 + 5 and [c.position for c in comparisons] == [2, 3, 4, 5]
        holder.stop()
        assert all(c.wait(120) for c in comparisons) and {c.status for c in comparisons} == {DONE}
        # Each comparison is the one `compare` trains in one go: merging arms changes no number.
        alone = compare(replace(config, freeze_depth=2))
        merged = comparisons[2].outcome
        assert merged.accuracy("finetune") == alone.accuracy("finetune")
        assert merged.accuracy("scratch") == alone.accuracy("scratch") == comparisons[0].outcome.accuracy("scratch")
        assert merged.verdict() == Outcome.of(alone).verdict()
        # Each session's history lists its comparison; the arms are stored once, to be shared.
        assert [len(store.comparisons(owner=f"student{k}")) for k in range(4)] == [1] * 4
        assert len(store) == 4 + 4 + 1  # four comparisons, four finetune arms, one scratch arm (the teacher's stopped)
        later = q.submit(replace(config, freeze_depth=3), owner="student9")
        assert later.status == DONE and later.reused  # both arms, and the comparison, from the store
        deeper = q.submit(replace(config, per_class=7, freeze_depth=3), owner="student9")
        assert deeper.wait(120) and not deeper.parts[0].reused
    finally:
        q.shutdown()


def test_a_session_that_stops_lets_go_of_a_shared_arm_only(tiny):
    q = JobQueue(workers=1)
    try:
        holder = q.submit(long(tiny, 190), owner="teacher")
        wait_until(lambda: holder.status == RUNNING)
        alice = q.submit(replace(tiny, seed=191, freeze_depth=1), owner="alice")
        bob = q.submit(replace(tiny, seed=191, freeze_depth=2), owner="bob")
        alice.stop("alice")
        assert alice.status == STOPPED and alice.outcome is None and alice.parts[0].status == STOPPED
        assert alice.parts[1] is bob.parts[1] and bob.parts[1].owners == {"bob"} and bob.parts[1].status == QUEUED
        holder.stop()
        assert bob.wait(120) and bob.status == DONE and alice.status == STOPPED
    finally:
        q.shutdown()

"""The job queue's workers as Ray actors, on a local Ray instance: the worker's own code, the tiny backbone."""

from dataclasses import replace

import pytest

from tests.waiting import wait_until
from transferlab.serve.job import DONE, FAILED, RUNNING, STOPPED
from transferlab.serve.jobs import JobQueue

ray = pytest.importorskip("ray")


def test_the_dashboard_runs_a_comparison_on_ray_actors(monkeypatch, tmp_path):
    """`TRANSFERLAB_RAY_ADDRESS=local make app`, headless: the page's queue is made of Ray actors."""
    from dashboard.server import job_queue, run_store
    from tests.test_app import open_page, run_to_the_end, use_tiny
    from transferlab.serve.ray_workers import RayWorker

    monkeypatch.setenv("TRANSFERLAB_RAY_ADDRESS", "local")
    monkeypatch.setenv("TRANSFERLAB_RAY_CPUS", "1")
    monkeypatch.setenv("TRANSFERLAB_STORE", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("TRANSFERLAB_SHOW_TEST_ENTRIES", "1")
    job_queue.clear(), run_store.clear()  # this process's page server, made anew from the environment
    try:
        app = use_tiny(open_page(), steps=15, per_class=5)
        job = run_to_the_end(app, timeout=300)
        assert job.status == DONE and "Test accuracy: " in " ".join(str(s.value) for s in app.success)
        assert job_queue().workers == 2 and all(isinstance(w, RayWorker) for w in job_queue()._procs.values())
        assert {r.arm for r in job.history().itertuples()} == {"finetune", "scratch"}
    finally:
        job_queue().shutdown()  # its actors go, and their cores with them
        job_queue.clear(), run_store.clear()


@pytest.fixture(scope="module")
def queue():
    """Two actors of one core each: a local instance has as many cores as this machine (two, in CI)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLAB_RAY_CPUS", "1")
        q = JobQueue(workers=2, ray="local")
        yield q
        q.shutdown()
        ray.shutdown()


def test_two_sessions_train_on_two_actors_with_live_records_and_stop(queue, tiny):
    alice = queue.submit(replace(tiny, epochs=3000, seed=300), ("finetune",), owner="alice")
    bob = queue.submit(replace(tiny, epochs=3000, seed=301), ("scratch",), owner="bob")
    # Both train at once, one actor each, and their records reach the page while they train.
    wait_until(lambda: len(alice.records()) > 1 and len(bob.records()) > 1, timeout=120)
    assert alice.status == bob.status == RUNNING and alice.progress > 0 and bob.progress > 0
    assert {r.arm for r in alice.records()} == {"finetune"} and {r.arm for r in bob.records()} == {"scratch"}
    alice.stop("alice")
    assert alice.wait(60) and alice.status == STOPPED and alice.outcome.stopped
    assert bob.status == RUNNING  # Bob's run goes on
    bob.stop("bob")
    assert bob.wait(60) and bob.status == STOPPED
    # A whole comparison comes back as from the worker processes.
    done = queue.submit(replace(tiny, seed=302), owner="carol")
    assert done.wait(120) and done.status == DONE and set(done.outcome.arms) == {"finetune", "scratch"}
    assert done.outcome.verdict() and not done.outcome.stopped
    # ...with ordinary arrays, not Ray's read-only views (torch warns on those, and they cannot be changed).
    assert all(a.flags.writeable for m in done.outcome.mistakes.values() for a in m)
    assert all(p.flags.writeable for p in done.outcome.predictions.values())


def test_a_lost_actor_fails_its_run_and_is_replaced(queue, tiny):
    job = queue.submit(replace(tiny, epochs=3000, seed=310), ("finetune",), owner="alice")
    wait_until(lambda: job.status == RUNNING and job.progress > 0, timeout=120)
    lost = [worker for worker in queue._procs.values() if worker.alive]
    for worker in lost:  # the machines under them go away (both, to be sure to hit the one training)
        ray.kill(worker.actor)
    assert job.wait(60) and job.status == FAILED and "Ray actor was lost" in job.error
    after = queue.submit(replace(tiny, seed=311), ("finetune",), owner="bob")
    assert after.wait(180) and after.status == DONE  # on a new actor
    answering = {worker for worker in queue._procs.values() if worker.alive}
    assert answering and not answering & set(lost)


def test_an_actor_the_cluster_cannot_place_fails_its_run_with_what_to_do(tiny, monkeypatch):
    from transferlab.serve import ray_workers

    monkeypatch.setenv("TRANSFERLAB_RAY_CPUS", "64")  # more cores than this machine's local instance has
    monkeypatch.setattr(ray_workers, "PLACE_SECONDS", 5.0)
    q = JobQueue(workers=1, ray="local")
    try:
        job = q.submit(replace(tiny, seed=320), ("finetune",), owner="alice")
        wait_until(lambda: job.phase == "waiting for the Ray cluster to start a worker", timeout=30)
        assert job.wait(60) and job.status == FAILED
        assert "no room for a worker (64 cpus) within 5 s" in job.error and "TRANSFERLAB_RAY_CPUS" in job.error
    finally:
        q.shutdown()

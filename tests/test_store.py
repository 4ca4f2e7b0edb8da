"""The run store: outcomes survive a round trip, reopening, concurrent writers and a killed writer."""

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transferlab import TransferlabError, compare
from transferlab.training.outcome import Outcome
from transferlab.training.store import RunStore, default_store_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def outcome(tiny) -> Outcome:
    """One real comparison of the tiny entries, trained once."""
    return Outcome.of(compare(tiny), elapsed=1.0)


def assert_same(a: Outcome, b: Outcome) -> None:
    assert a.config == b.config
    assert a.arms == b.arms and a.classes == b.classes
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert b.labels.dtype.kind == "i"
    assert list(a.predictions) == list(b.predictions)
    for arm, preds in a.predictions.items():
        np.testing.assert_array_equal(preds, b.predictions[arm])
        assert b.predictions[arm].dtype.kind == "i"
    assert list(a.mistakes) == list(b.mistakes)
    for arm, arrays in a.mistakes.items():
        for saved, loaded in zip(arrays, b.mistakes[arm], strict=True):
            np.testing.assert_array_equal(saved, loaded)
            assert saved.dtype == loaded.dtype
    assert b.mistakes[arm][0].dtype == np.uint8
    assert (a.stopped, a.device, a.versions, a.elapsed) == (b.stopped, b.device, b.versions, b.elapsed)
    assert a.verdict() == b.verdict()
    pd.testing.assert_frame_equal(a.per_class(), b.per_class())


def run_child(code: str, *args: object, **kwargs) -> subprocess.Popen:
    """`python -c code args...` with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, cwd=ROOT, **kwargs)


def test_save_then_load_round_trips(tmp_path, outcome):
    store = RunStore(tmp_path / "runs.sqlite")
    cid = store.save(outcome)
    loaded = store.load(cid)
    assert_same(outcome, loaded)
    assert loaded.mistakes["finetune"][0].ndim == 4
    assert loaded.key == outcome.key and loaded.gap == outcome.gap
    with pytest.raises(KeyError, match="No comparison 999"):
        store.load(999)


def test_config_with_tuples_and_nones_round_trips(tmp_path, outcome):
    config = dataclasses.replace(outcome.config, classes=(2, 0), per_class=None, image_size=None, root="x")
    store = RunStore(tmp_path / "runs.sqlite")
    loaded = store.load(store.save(dataclasses.replace(outcome, config=config)))
    assert loaded.config == config and loaded.config.classes == (2, 0)


def test_find_returns_the_newest_finished_comparison(tmp_path, outcome):
    store = RunStore(tmp_path / "runs.sqlite")
    assert store.find(outcome.key) is None
    first, second = store.save(outcome), store.save(outcome)
    assert second > first and store.find(outcome.key) == second
    assert store.find("another-key") is None
    store.save(dataclasses.replace(outcome, stopped=True))  # newer, but stopped: not reusable
    assert store.find(outcome.key) == second

    stopped_only = RunStore(tmp_path / "stopped.sqlite")
    stopped_only.save(dataclasses.replace(outcome, stopped=True))
    assert stopped_only.find(outcome.key) is None


def test_comparisons_lists_cheap_columns_per_owner(tmp_path, outcome):
    store = RunStore(tmp_path / "runs.sqlite")
    shared = store.save(outcome, owner="alice")
    store.add_owner(shared, "bob")
    store.add_owner(shared, "bob")  # idempotent
    own = store.save(outcome, owner="alice")
    nobody = store.save(outcome)

    everything = store.comparisons()
    assert list(everything["id"]) == [nobody, own, shared]  # newest first
    assert list(store.comparisons(owner="alice")["id"]) == [own, shared]
    assert list(store.comparisons(owner="bob")["id"]) == [shared]
    assert store.comparisons(owner="carol").empty
    assert list(store.comparisons(limit=2)["id"]) == [nobody, own]

    row = everything.iloc[0]
    assert row["key"] == outcome.key and row["dataset"] == "test_blobs" and row["backbone"] == "test_tiny"
    assert row["per_class"] == 8 and row["freeze_depth"] == 1 and row["epochs"] == 3 and row["seed"] == 0
    assert row["image_size"] == outcome.table["image_size"].iloc[0]
    assert row["finetune"] == outcome.accuracy("finetune") and row["scratch"] == outcome.accuracy("scratch")
    assert row["gap"] == pytest.approx(outcome.gap)
    assert not row["stopped"] and row["device"] == outcome.device and row["elapsed"] == 1.0
    assert everything["created"].dt.tz is not None
    assert "history" not in everything and "mistakes" not in everything


def test_an_absent_arm_leaves_its_accuracy_and_the_gap_empty(tmp_path, outcome):
    only = dataclasses.replace(outcome, arms=("finetune",), table=outcome.table[outcome.table.arm == "finetune"])
    store = RunStore(tmp_path / "runs.sqlite")
    store.save(only)
    row = store.comparisons().iloc[0]
    assert row["finetune"] == outcome.accuracy("finetune")
    assert pd.isna(row["scratch"]) and pd.isna(row["gap"])


def test_histories_by_id(tmp_path, outcome):
    store = RunStore(tmp_path / "runs.sqlite")
    a, b = store.save(outcome), store.save(outcome)
    histories = store.histories([b, a])
    assert list(histories) == [b, a]
    pd.testing.assert_frame_equal(histories[a], outcome.history)
    with pytest.raises(KeyError):
        store.histories([a, 999])


def test_survives_reopening(tmp_path, outcome):
    path = tmp_path / "deep" / "folder" / "runs.sqlite"  # missing folders are created
    cid = RunStore(path).save(outcome, owner="alice")
    again = RunStore(path)
    assert len(again) == 1 and list(again.comparisons(owner="alice")["id"]) == [cid]
    assert_same(outcome, again.load(cid))


def test_threads_of_one_process_share_a_store(tmp_path, outcome):
    store = RunStore(tmp_path / "runs.sqlite")
    errors = []

    def save_some(owner):
        try:
            for _ in range(5):
                store.save(outcome, owner=owner)
        except Exception as e:  # pragma: no cover - reported by the assert below
            errors.append(e)

    threads = [threading.Thread(target=save_some, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(store) == 20
    assert all(len(store.comparisons(owner=f"s{i}")) == 5 for i in range(4))


def test_two_processes_writing_at_once_lose_nothing(tmp_path, outcome):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    cid = store.save(outcome)
    code = (
        "import sys\nfrom transferlab.training.store import RunStore\n"
        "store = RunStore(sys.argv[1]); outcome = store.load(int(sys.argv[2]))\n"
        "for _ in range(25): store.save(outcome, owner=sys.argv[3])\n"
    )
    children = [run_child(code, path, cid, owner) for owner in ("first", "second")]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    assert len(store) == 51
    assert len(store.comparisons(owner="first")) == 25 and len(store.comparisons(owner="second")) == 25


def test_a_killed_writer_leaves_its_committed_comparisons_intact(tmp_path, outcome):
    path = tmp_path / "runs.sqlite"
    cid = RunStore(path).save(outcome)
    code = (
        "import sys\nfrom transferlab.training.store import RunStore\n"
        "store = RunStore(sys.argv[1]); outcome = store.load(int(sys.argv[2]))\n"
        "while True:\n    print(store.save(outcome), flush=True)\n"
    )
    child = run_child(code, path, cid, stdout=subprocess.PIPE, text=True)
    try:
        committed = [int(child.stdout.readline()) for _ in range(5)]
    finally:
        child.send_signal(signal.SIGKILL)  # mid-write, most likely: it does nothing else
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    store = RunStore(path)
    ids = list(store.comparisons()["id"])
    assert len(store) == len(ids) >= 6 and set(committed) <= set(ids)
    for i in ids:
        assert_same(outcome, store.load(i))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_export_csv_writes_a_row_per_comparison_and_arm(tmp_path, outcome):
    store = RunStore(tmp_path / "runs.sqlite")
    a = store.save(outcome, owner="alice")
    b = store.save(outcome)
    rows = read_csv(store.export_csv(tmp_path / "all.csv"))
    assert sorted((int(r["id"]), r["arm"]) for r in rows) == sorted(
        (i, arm) for i in (a, b) for arm in ("finetune", "scratch")
    )
    for r in rows:
        assert float(r["test_accuracy"]) == pytest.approx(outcome.accuracy(r["arm"]))
        assert r["dataset"] == "test_blobs" and r["backbone"] == "test_tiny" and r["freeze_depth"] == "1"
        assert r["device"] == outcome.device and r["version_torch"] == outcome.versions["torch"]
        assert r["created"] and r["test_loss"] and r["seconds"]

    rows = read_csv(store.export_csv(tmp_path / "alice.csv", owner="alice", class_accuracy=True))
    assert {int(r["id"]) for r in rows} == {a} and len(rows) == 2
    per_class = outcome.per_class().set_index(["arm", "class"])["accuracy"]
    for r in rows:
        for name in outcome.classes:
            assert float(r[f"accuracy[{name}]"]) == pytest.approx(per_class[(r["arm"], name)])

    rows = read_csv(store.export_histories_csv(tmp_path / "histories.csv", owner="alice"))
    assert len(rows) == len(outcome.history) and {r["id"] for r in rows} == {str(a)}
    assert list(rows[0]) == ["id", *outcome.history.columns]


def test_a_failed_export_writes_nothing(tmp_path, outcome, monkeypatch):
    store = RunStore(tmp_path / "runs.sqlite")
    store.save(outcome)
    missing = tmp_path / "missing" / "runs.csv"
    with pytest.raises(TransferlabError, match="does not exist"):
        store.export_csv(missing)
    assert not missing.parent.exists()

    out = tmp_path / "out"
    out.mkdir()
    (out / "runs.csv").write_text("the previous export\n")

    def fail_midway(self, f, **kwargs):
        f.write("id,arm\n1,fine")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        store.export_csv(out / "runs.csv")
    assert [p.name for p in out.iterdir()] == ["runs.csv"]  # no temporary file left behind
    assert (out / "runs.csv").read_text() == "the previous export\n"


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"these are not the runs you are looking for\n" * 100)
    with pytest.raises(TransferlabError, match="TRANSFERLAB_STORE") as info:
        RunStore(path)
    assert str(path) in str(info.value)


def test_a_folder_that_cannot_be_created_gives_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "runs.sqlite"
    with pytest.raises(TransferlabError, match="TRANSFERLAB_STORE") as info:
        RunStore(path)
    assert str(path) in str(info.value)


def test_default_store_path(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_STORE", str(tmp_path / "mine.sqlite"))
    assert default_store_path() == tmp_path / "mine.sqlite"
    monkeypatch.delenv("TRANSFERLAB_STORE")
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path / "data"))
    assert default_store_path() == tmp_path / "data" / "runs-v3.sqlite"


def test_a_store_from_before_the_step_budget_is_refused_with_what_to_do(tmp_path):
    import sqlite3

    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE comparisons (id INTEGER PRIMARY KEY, key TEXT, epochs INTEGER)")
    with pytest.raises(TransferlabError, match="written by an older transferlab.*Move the file away"):
        RunStore(old)

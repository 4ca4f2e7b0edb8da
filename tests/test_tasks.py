"""Imports and exports done by the workers, not the page server: staged, queued, with progress,
stoppable, and leaving nothing behind when they fail."""

from __future__ import annotations

import json
import threading
import zipfile

import pytest

from tests.upload_corpus import two_classes, zip_of
from transferlab.data.imports import list_imported
from transferlab.errors import StopTraining
from transferlab.serve.job import DONE, EXPORT, FAILED, IMPORT
from transferlab.serve.jobs import JobQueue
from transferlab.serve.tasks import import_staged, stage_upload, staging_dir
from transferlab.serve.worker import run_task

OWNER = "cd" * 16


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path / "data"))  # before the workers start: they inherit it
    return tmp_path / "data"


@pytest.fixture
def queue(data):
    q = JobQueue(workers=1)
    yield q
    q.shutdown()


def test_an_import_runs_in_a_worker_with_progress(queue, data):
    staged = stage_upload(zip_of(two_classes(n=12)), OWNER)
    job = queue.submit_task(IMPORT, {"staged": str(staged), "name": "pets", "owner": OWNER}, owner=OWNER)
    assert queue.jobs(OWNER, IMPORT) == [job] or job.done
    assert job.wait(120) and job.status == DONE, job.error
    report = job.result
    assert report.classes == ("cats", "dogs")
    assert sum(report.train_counts.values()) + sum(report.test_counts.values()) == 24
    assert job.progress == 1.0 and job.device.startswith("CPU"), "the worker said it started and how far it got"
    assert f"{OWNER}/pets" in list_imported(OWNER)
    assert not staged.exists() and not any(staging_dir().iterdir()), "the staged upload is removed once imported"


def test_a_refused_import_fails_with_its_reason_and_writes_nothing(queue, data):
    staged = stage_upload(zip_of({"cats/a.png": two_classes()["cats/0.png"]}), OWNER)
    job = queue.submit_task(IMPORT, {"staged": str(staged), "name": "one", "owner": OWNER}, owner=OWNER)
    assert job.wait(120) and job.status == FAILED
    assert "class 'cats' has 1 readable image" in job.error, job.error
    assert list_imported(OWNER) == [] and not staged.exists()
    assert not (data / "imports").exists() or not any((data / "imports").rglob("*.jpg"))


def test_a_stopped_import_writes_nothing(data):
    staged = stage_upload(zip_of(two_classes(n=6)), OWNER)
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        stop.set()  # the learner pressed Stop after the first image

    with pytest.raises(StopTraining):
        import_staged(str(staged), "halted", OWNER, progress, stop)
    assert seen == [1] and list_imported(OWNER) == [] and not staged.exists()
    staged = stage_upload(zip_of(two_classes(n=6)), OWNER)
    sent = []
    message = run_task(sent.append, 7, IMPORT, {"staged": str(staged), "name": "x", "owner": OWNER}, stop)
    assert message == ("done", 7, None), "a stopped task ends quietly, its worker alive"


def test_images_sent_class_by_class_are_staged_as_a_zip_of_class_folders(data):
    png = two_classes()["cats/0.png"]
    staged = stage_upload({"cats": [("a.png", png), ("dir/a.png", png)], "dogs": [("b.png", png)]}, OWNER)
    with zipfile.ZipFile(staged) as archive:
        assert archive.namelist() == ["cats/a.png", "cats/a (2).png", "dogs/b.png"], "same names kept, not merged"


def test_an_export_is_made_once_by_a_worker_and_onnxruntime_reads_it(queue, tiny, data):
    ort = pytest.importorskip("onnxruntime")
    run = queue.submit(tiny, ("finetune",), owner=OWNER)
    assert run.wait(120) and run.status == DONE
    key = run.outcome.unit_key("finetune")
    first = queue.submit_task(EXPORT, {"key": key, "suffix": ".onnx"}, owner=OWNER)
    again = queue.submit_task(EXPORT, {"key": key, "suffix": ".onnx"}, owner="another")
    assert again is first or (first.done and again.wait(120)), "the same export asked for twice is one task"
    assert first.wait(120) and first.status == DONE, first.error
    session = ort.InferenceSession(first.result)
    classes = json.loads(session.get_modelmeta().custom_metadata_map["classes"])
    assert len(classes) == len(run.outcome.classes)
    missing = queue.submit_task(EXPORT, {"key": "no-such-comparison", "suffix": ".onnx"}, owner=OWNER)
    assert missing.wait(120) and missing.status == FAILED and "no longer kept" in missing.error


def test_unknown_tasks_are_refused_at_once(queue):
    with pytest.raises(ValueError, match="unknown task"):
        queue.submit_task("train everything", {}, owner=OWNER)

"""Your own images into the kit: every input of the upload corpus gets the outcome it must have,
a refused upload writes nothing, and an imported set trains like any other dataset."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.upload_corpus import CASES, exif_rotated, sixteen_bit, two_classes, zip_of
from transferlab import ExperimentConfig, load_dataset
from transferlab.data.imports import ImportRefused, delete_imported, import_images, imported_path, list_imported
from transferlab.data.registry import DatasetFacts, dataset_facts, list_datasets
from transferlab.errors import ConfigError
from transferlab.training.splits import prepare_data

OWNER = "ab" * 16


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case, tmp_path, data_dir):
    source = case.build(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    if case.expect == "refused":
        with pytest.raises(ImportRefused, match=case.says.replace("(", r"\(")):
            import_images(source, case.name, limits=case.limits)
        assert files_under(data_dir) == [], "a refused upload leaves nothing behind"
        assert sorted(p for p in tmp_path.rglob("*")) == before, "nothing written beside the upload either"
        return
    report = import_images(source, case.name, limits=case.limits)
    assert {c: f"{report.train_counts[c]}+{report.test_counts[c]}" for c in report.classes} == case.counts
    skipped = {f for f, _ in report.skipped}
    assert set(case.skipped) <= skipped, f"not reported as skipped: {set(case.skipped) - skipped}"
    assert not files_under(data_dir / "imports" / ".staging")
    written = files_under(data_dir)
    assert all(p.is_relative_to(data_dir / "imports" / "shared" / case.name) for p in written)
    assert all(p.suffix == ".jpg" or p.name == "dataset.json" for p in written), "only what the kit encodes"
    facts = dataset_facts(case.name)  # from the manifest: before anything is loaded
    ds = load_dataset(case.name)
    assert ds.classes == report.classes and len(ds.train_labels) == sum(report.train_counts.values())
    assert facts == DatasetFacts.of(ds), "the manifest's counts are what loading the set finds"


def test_unusual_modes_come_out_as_a_viewer_shows_them(tmp_path, data_dir):
    entries = two_classes() | {"cats/rotated.jpg": exif_rotated(), "cats/sixteen.png": sixteen_bit(32896)}
    import_images(zip_of(entries), "modes")
    root = imported_path("modes")
    stored = {Image.open(p).size: np.asarray(Image.open(p)).mean() for p in (root / "train" / "cats").glob("*.jpg")} | {
        Image.open(p).size: np.asarray(Image.open(p)).mean() for p in (root / "test" / "cats").glob("*.jpg")
    }
    assert (20, 60) in stored, "EXIF orientation 6 turns a 60 x 20 image upright: 20 wide, 60 tall"
    assert abs(stored[(24, 24)] - 128) < 3, "16-bit 32896 is mid-grey, not clipped to white"


def test_the_test_split_made_is_the_same_every_time(tmp_path):
    import_images(zip_of(two_classes(n=10)), "a")
    import_images(zip_of(two_classes(n=10)), "b")
    a, b = load_dataset("a"), load_dataset("b")
    assert len(a.test_labels) == 4 and bool((a.test_images == b.test_images).all())


def test_sessions_see_only_their_own_sets_and_the_shared_ones(tmp_path):
    import_images(zip_of(two_classes()), "shared-set")
    report = import_images(zip_of(two_classes()), "mine", owner=OWNER)
    assert report.name == f"{OWNER}/mine"
    assert list_imported(OWNER) == sorted([f"{OWNER}/mine", "shared-set"])
    assert list_imported("cd" * 16) == ["shared-set"]
    assert "shared-set" in list_datasets() and report.name not in list_datasets()
    assert load_dataset(report.name).num_classes == 2
    with pytest.raises(ImportRefused, match="session id"):
        import_images(zip_of(two_classes()), "x", owner="../../etc")


def test_replace_and_delete(tmp_path):
    import_images(zip_of(two_classes(n=5)), "pets2")
    with pytest.raises(ImportRefused, match="exists already"):
        import_images(zip_of(two_classes(n=10)), "pets2")
    import_images(zip_of(two_classes(n=10)), "pets2", replace=True)
    assert len(load_dataset("pets2").train_labels) == 16, "a re-import is loaded anew, not from the cache"
    delete_imported("pets2")
    assert imported_path("pets2") is None and "pets2" not in list_datasets()
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("pets2")


def test_more_images_per_class_than_exist_is_a_clear_error(tmp_path):
    import_images(zip_of(two_classes(n=10)), "few")
    with pytest.raises(ConfigError, match="choose per_class <="):
        prepare_data(ExperimentConfig(dataset="few", backbone="test_tiny", per_class=50, val_per_class=0))


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "transferlab", *args], capture_output=True, text=True, env=env)


def test_command_line_import_and_refusal(tmp_path, data_dir):
    import os

    env = dict(os.environ, TRANSFERLAB_DATA=str(data_dir), TRANSFERLAB_NO_TCMALLOC="1")
    archive = tmp_path / "photos.zip"
    archive.write_bytes(zip_of(two_classes()).getvalue())
    done = run_cli("import", str(archive), "--name", "photos", env=env)
    assert done.returncode == 0, done.stderr
    assert "2 classes, 8 training and 2 test images" in done.stdout
    evil = tmp_path / "evil.zip"
    evil.write_bytes(zip_of(two_classes() | {"../evil.png": b"x"}).getvalue())
    refused = run_cli("import", str(evil), "--name", "evil", env=env)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "climbs out" in refused.stderr and "Traceback" not in refused.stderr
    assert imported_path("evil") is None
    assert run_cli("remove", "photos", env=env).returncode == 0 and imported_path("photos") is None


def test_an_imported_sets_facts_come_from_its_manifest_without_reading_an_image(monkeypatch):
    import_images(zip_of(two_classes(n=10)), "counted", owner=OWNER)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the images were read to count them")

    monkeypatch.setattr("transferlab.data.imports.load_image_folder", no_decoding)
    facts = dataset_facts(f"{OWNER}/counted")
    assert facts.classes == ("cats", "dogs") and facts.train + facts.test == 20
    assert facts.smallest_class == min(facts.train_counts) and facts.skipped == ()

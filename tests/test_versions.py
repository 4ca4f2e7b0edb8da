"""Datasets have versions: a set changed under its name is never answered from what was computed
on the old one (the run store, the feature cache, a kept model), and an edited folder is read again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.upload_corpus import image, zip_of
from transferlab import ExperimentConfig, load_dataset
from transferlab.data.imports import import_images
from transferlab.data.registry import BUILTIN_VERSION, dataset_version
from transferlab.studies.grid import Grid, run_sweep
from transferlab.training.outcome import comparison_key
from transferlab.training.splits import prepare_data
from transferlab.training.store import RunStore


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def pets(cats=(200, 30, 30), dogs=(30, 30, 200), n=10) -> bytes:
    files = {f"cats/{i}.png": image(cats, (48 + i, 32)) for i in range(n)}
    return zip_of(files | {f"dogs/{i}.png": image(dogs, (48 + i, 32)) for i in range(n)})


def config(dataset: str, root=None) -> ExperimentConfig:
    return ExperimentConfig(
        dataset=dataset, root=root, backbone="test_tiny", per_class=3, val_per_class=2, steps=4, batch_size=4
    )


def test_built_in_sets_have_a_constant_version():
    assert dataset_version("test_blobs") == BUILTIN_VERSION == load_dataset("test_blobs").version


def test_a_reimported_set_trains_anew_and_its_features_are_not_reused(tmp_path):
    import_images(pets(), "pets")
    store = RunStore(tmp_path / "runs.sqlite")
    grid = Grid(base=config("pets"), freeze_depth=(1,), per_class=(3,), arms=("finetune", "probe"))
    first = run_sweep(grid, store, progress=False)
    old_key, old_features = comparison_key(grid.base, ("probe",)), prepare_data(grid.base).keys
    assert run_sweep(grid, store, progress=False).from_store.all(), "unchanged: answered from the store"

    import_images(pets(cats=(30, 200, 30), dogs=(200, 200, 30)), "pets", replace=True)
    assert comparison_key(grid.base, ("probe",)) != old_key
    assert set(prepare_data(grid.base).keys.values()).isdisjoint(old_features.values())
    again = run_sweep(grid, store, progress=False)
    assert not again.from_store.any(), "the re-imported set trains anew"
    assert set(again.comparison).isdisjoint(first.comparison)
    versions = store.comparisons().dataset_version
    assert versions.nunique() == 2 and versions.str.startswith("imported").all()


def test_an_edited_folder_is_read_again_by_the_same_process(tmp_path):
    root = tmp_path / "photos"
    for name, colour in {"red": (255, 0, 0), "blue": (0, 0, 255)}.items():
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((20, 20, 3), colour, np.uint8)).save(root / name / f"{i}.png")
    before = load_dataset("image_folder", root)
    assert load_dataset("image_folder", root) is before, "unchanged: kept in memory"
    key = comparison_key(config("image_folder", str(root)), ("finetune",))

    (root / "red" / "0.png").unlink()  # a long-lived worker sees the edit on its next load
    green = root / "red" / "5.png"
    Image.fromarray(np.full((20, 20, 3), (0, 255, 0), np.uint8)).save(green)
    after = load_dataset("image_folder", root)

    def green(ds):
        return int(torch.cat([ds.train_images, ds.test_images])[:, 1].amax())

    assert green(before) == 0 and green(after) == 255, "the new image is read, not the old one"
    assert after.version != before.version and after.version.startswith("folder ")
    assert len(after.train_labels) + len(after.test_labels) == 11
    assert comparison_key(config("image_folder", str(root)), ("finetune",)) != key

import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

import transferlab.data.builtin as builtin
import transferlab.data.registry as tds
from transferlab import ConfigError, Unavailable, load_dataset, load_image_folder, stratified_indices, to_model_input


def test_stratified_subset_is_exact_reproducible_and_nested():
    labels = torch.arange(5).repeat(40)
    a = stratified_indices(labels, 10, seed=3)
    assert torch.bincount(labels[a]).tolist() == [10] * 5
    assert torch.equal(a, stratified_indices(labels, 10, seed=3))
    assert not torch.equal(a, stratified_indices(labels, 10, seed=4))
    # Growing n adds images and never swaps them out.
    assert set(a.tolist()) <= set(stratified_indices(labels, 30, seed=3).tolist())
    assert len(stratified_indices(labels, None, seed=0)) == 200


def test_asking_for_more_images_than_a_class_has_says_the_limit():
    with pytest.raises(ConfigError, match="per_class <= 40"):
        stratified_indices(torch.arange(5).repeat(40), 41, seed=0)


@pytest.mark.slow
def test_fashion_mnist_is_real_and_complete():
    ds = load_dataset("fashion_mnist")
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and torch.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.classes[9] == "Ankle boot"


def test_packaged_digit_sets_have_fixed_disjoint_splits():
    for name, size in [("digits", 8), ("mnist", 28)]:
        ds = load_dataset(name)
        assert ds.num_classes == 10 and ds.train_images.shape[-1] == size
        train = {tuple(x.flatten().tolist()) for x in ds.train_images[:200]}
        assert not train & {tuple(x.flatten().tolist()) for x in ds.test_images}


def test_model_input_grayscale_to_rgb_resized_and_normalised():
    images = torch.full((4, 1, 8, 8), 255, dtype=torch.uint8)
    x = to_model_input(images, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert x.shape == (4, 3, 32, 32)
    assert torch.allclose(x, torch.full_like(x, 2.0))


def _write_images(folder, colours, count):
    for name, colour in colours.items():
        (folder / name).mkdir(parents=True)
        for i in range(count):
            pixels = np.full((20 + i, 30, 3), colour, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")


def test_image_folder_splits_a_class_folder_tree(tmp_path):
    _write_images(tmp_path, {"red": (255, 0, 0), "blue": (0, 0, 255)}, 10)
    (tmp_path / "red" / "broken.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="broken.jpg"):
        ds = load_image_folder(tmp_path, size=24)
    assert ds.classes == ("blue", "red")
    assert ds.train_images.shape[1:] == (3, 24, 24)
    assert len(ds.train_labels) + len(ds.test_labels) == 20 and len(ds.test_labels) == 4
    assert ds.train_images[ds.train_labels == 1][:, 0].float().mean() > 250  # red stays red


def test_image_folder_uses_train_and_test_folders(tmp_path):
    _write_images(tmp_path / "train", {"a": (0, 0, 0), "b": (255, 255, 255)}, 3)
    _write_images(tmp_path / "test", {"a": (0, 0, 0), "b": (255, 255, 255)}, 2)
    ds = load_image_folder(tmp_path, size=16)
    assert len(ds.train_labels) == 6 and len(ds.test_labels) == 4


def test_image_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ConfigError, match="one sub-folder of images per class|class sub-folders"):
        load_image_folder(tmp_path)
    _write_images(tmp_path, {"only": (1, 2, 3)}, 3)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        load_image_folder(tmp_path)


def test_image_folder_skips_every_file_pillow_rejects_and_names_them(tmp_path, monkeypatch):
    from PIL import Image

    _write_images(tmp_path, {"red": (255, 0, 0), "blue": (0, 0, 255)}, 6)
    (tmp_path / "blue" / "truncated.png").write_bytes((tmp_path / "blue" / "0.png").read_bytes()[:60])
    # A decompression bomb: Pillow raises DecompressionBombError (not an OSError) above twice the limit.
    Image.new("L", (300, 300)).save(tmp_path / "red" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300 // 3)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\)"):
        ds = load_image_folder(tmp_path, size=16)
    assert len(ds.train_labels) + len(ds.test_labels) == 12
    assert sorted(ds.skipped) == ["blue/truncated.png (OSError)", "red/bomb.png (DecompressionBombError)"]


def test_image_folder_refuses_too_few_usable_classes_and_a_class_missing_from_test(tmp_path):
    _write_images(tmp_path / "one", {"a": (0, 0, 0)}, 3)
    (tmp_path / "one" / "b").mkdir()
    (tmp_path / "one" / "b" / "x.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match=r"at least 2 classes .* a: 3, b: 0"):
        load_image_folder(tmp_path / "one")
    _write_images(tmp_path / "two" / "train", {"a": (0, 0, 0), "b": (255, 255, 255)}, 3)
    _write_images(tmp_path / "two" / "test", {"a": (0, 0, 0)}, 2)
    with pytest.raises(ConfigError, match="no folder for class\\(es\\) b"):
        load_image_folder(tmp_path / "two")


def test_online_dataset_offline_gives_an_actionable_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path))

    class Offline:
        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("no network")

    monkeypatch.setattr(builtin, "_tv", lambda name: Offline)
    ok, why = tds.dataset_status("cifar10")
    assert not ok and str(tmp_path) in why
    with pytest.raises(Unavailable, match="TRANSFERLAB_DATA"):
        tds._load_cached.__wrapped__("cifar10", None, "1")


def test_online_dataset_is_read_from_its_tensor_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path))
    ds = load_dataset("test_blobs")
    path = builtin._tensor_cache_path("eurosat")
    path.parent.mkdir(parents=True)
    torch.save(
        {k: getattr(ds, k) for k in ("name", "classes", "train_images", "train_labels", "test_images", "test_labels")},
        path,
    )
    assert tds.dataset_status("eurosat")[0]
    assert torch.equal(tds._load_cached.__wrapped__("eurosat", None, "1").train_images, ds.train_images)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ConfigError, match="fashion_mnist"):
        load_dataset("imagenet22k")

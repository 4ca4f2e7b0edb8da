"""Models you can take away: the ONNX and TorchScript files give the engine's predictions on real
photos of any size, carry their class names, and load with nothing but onnxruntime and Pillow."""

from __future__ import annotations

import io
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from skimage import data as photos

from transferlab import ExperimentConfig, compare
from transferlab.data.folders import load_image
from transferlab.data.imports import import_images
from transferlab.errors import ConfigError
from transferlab.serve.export import export_model, keep_model, kept_model, load_model

# Real photos, each in its own shape: a wide one, a tall crop, a small one, a grey one.
PHOTOS = {
    "chelsea.png": photos.chelsea(),  # 300 x 451, a cat
    "coffee.png": photos.coffee(),  # 400 x 600
    "astronaut-tall.png": photos.astronaut()[:, 150:400],  # 512 x 250
    "rocket-small.png": photos.rocket()[::6, ::6],  # 71 x 106
    "camera-grey.png": np.stack([photos.camera()] * 3, -1),  # 512 x 512
}


def crops(image: np.ndarray, n: int, rng) -> list[tuple[str, bytes]]:
    """n random square crops of a photo, as PNG files: a class of real images."""
    h, w = image.shape[:2]
    files = []
    for i in range(n):
        s = int(rng.integers(min(h, w) // 2, min(h, w)))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        buf = io.BytesIO()
        Image.fromarray(image[y : y + s, x : x + s]).save(buf, "PNG")
        files.append((f"{i}.png", buf.getvalue()))
    return files


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finetune arm trained for a few steps on crops of three real photos, imported as a dataset."""
    root = tmp_path_factory.mktemp("export")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRANSFERLAB_DATA", str(root / "data"))
    rng = np.random.default_rng(0)
    per_class = {"cat": photos.chelsea(), "coffee": photos.coffee(), "astronaut": photos.astronaut()}
    import_images({c: crops(im, 10, rng) for c, im in per_class.items()}, "three-photos")
    config = ExperimentConfig(dataset="three-photos", per_class=6, val_per_class=0, steps=15, freeze_depth=5)
    result = compare(config, arms=["finetune"])
    for name, image in PHOTOS.items():
        Image.fromarray(image).save(root / name)
    yield result, root
    mp.undo()


def engine_probabilities(classifier, path) -> np.ndarray:
    """How the engine sees an image file: as a dataset image (`load_image`), then the network."""
    return classifier.probabilities(load_image(path, classifier.stored_size)[None])[0].numpy()


def test_onnx_gives_the_engines_predictions_on_real_photos(trained):
    result, root = trained
    path = export_model(result, root / "model.onnx")
    checkpoint = load_model(export_model(result, root / "model.pt"))
    session = ort.InferenceSession(str(path))
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == list(result.data.dataset.classes) == ["astronaut", "cat", "coffee"]
    assert session.get_inputs()[0].name == "image" and session.get_inputs()[0].type == "tensor(uint8)"
    for name in PHOTOS:
        rgb = np.asarray(Image.open(root / name).convert("RGB"))  # nothing but Pillow and onnxruntime
        exported = session.run(None, {"image": rgb})[0]
        engine = engine_probabilities(checkpoint, root / name)
        assert exported.shape == (3,) and abs(float(exported.sum()) - 1) < 1e-5
        assert np.abs(exported - engine).max() < 1e-4, name
        assert checkpoint.predict_image(rgb)[0] == checkpoint.classes[int(exported.argmax())]
    assert checkpoint.predict_image(np.asarray(Image.open(root / "chelsea.png")))[0] == "cat"


def test_torchscript_gives_the_same_and_carries_its_classes(trained):
    result, root = trained
    path = export_model(result, root / "model.torchscript")
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(json.loads(extra["metadata.json"])["classes"]) == ["astronaut", "cat", "coffee"]
    checkpoint = load_model(export_model(result, root / "again.pt"))
    for name in PHOTOS:
        rgb = torch.from_numpy(np.asarray(Image.open(root / name).convert("RGB")).copy())
        with torch.no_grad():
            assert (module(rgb).numpy() - engine_probabilities(checkpoint, root / name)).__abs__().max() < 1e-4


def test_a_grey_dataset_exports_a_model_that_greys_the_photo_first(tiny, tmp_path):
    result = compare(tiny, arms=["finetune"])
    checkpoint = load_model(export_model(result, tmp_path / "m.pt"))
    assert checkpoint.grey == (result.data.dataset.train_images.shape[1] == 1)
    session = ort.InferenceSession(str(export_model(result, tmp_path / "m.onnx")))
    rgb = photos.astronaut()
    assert (
        np.abs(
            session.run(None, {"image": rgb})[0] - checkpoint.deployable()(torch.from_numpy(rgb)).detach().numpy()
        ).max()
        < 1e-4
    )


def test_bad_names_and_the_kept_models(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path))
    result = compare(tiny, arms=["finetune"])
    with pytest.raises(ConfigError, match=r"\.onnx, \.torchscript or \.pt"):
        export_model(result, tmp_path / "model.h5")
    assert not list(tmp_path.glob("model*")), "nothing half-written"
    monkeypatch.setenv("TRANSFERLAB_KEEP_MODELS_MB", "0")  # each new model pushes out the older ones
    first = keep_model(result, "a" * 20)
    assert kept_model("a" * 20) == first
    keep_model(result, "b" * 20)
    assert kept_model("b" * 20) is not None and kept_model("a" * 20) is None


def test_every_exported_model_carries_its_card_with_the_interval_and_the_parity_measured(trained):
    result, root = trained
    onnx_path = export_model(result, root / "card.onnx")
    card = json.loads(ort.InferenceSession(str(onnx_path)).get_modelmeta().custom_metadata_map["model_card"])
    run = result.runs["finetune"]
    assert card["classes"] == ["astronaut", "cat", "coffee"] and card["trained_per_class"] == dict.fromkeys(
        card["classes"], 6
    )
    assert card["test_accuracy"] == pytest.approx(run.test_accuracy)
    assert card["test_low"] <= card["test_accuracy"] <= card["test_high"] and card["test_low"] < card["test_high"]
    assert "ImageNet" in card["pretrained"] and card["freeze_depth"] == 5
    mistakes = int((run.test_predictions != result.data.test_labels).sum())
    assert sum(n for _, _, n in card["confusions"]) <= mistakes and (mistakes == 0) == (card["confusions"] == [])
    parity = card["parity"]
    assert parity["format"] == "onnx" and parity["images"] == min(32, len(result.data.test_labels))
    assert parity["largest_difference"] < 1e-4 and parity["classes_agree"]
    text = (root / "card.onnx.md").read_text()
    assert f"{card['test_accuracy']:.1%} on {card['test_images']} held-out images (95% interval" in text
    assert "every predicted class agreed" in text and "**Parity** (onnx" in text
    # TorchScript and the checkpoint carry it too.
    export_model(result, root / "card.torchscript")
    extra = {"metadata.json": ""}
    torch.jit.load(str(root / "card.torchscript"), _extra_files=extra)
    assert json.loads(json.loads(extra["metadata.json"])["model_card"])["parity"]["format"] == "torchscript"
    export_model(result, root / "card.pt")
    assert load_model(root / "card.pt").card.classes == card["classes"] and (root / "card.pt.md").is_file()


def test_compare_export_writes_the_card_beside_the_model(tiny, tmp_path, capsys):
    from transferlab.__main__ import main

    argv = ["compare", "--dataset", "test_blobs", "--backbone", "test_tiny", "--per-class", "8", "--freeze-depth", "1"]
    assert main([*argv, "--epochs", "2", "--export", str(tmp_path / "blobs.onnx")]) == 0
    assert f"its model card to {tmp_path / 'blobs.onnx'}.md" in capsys.readouterr().err
    meta = ort.InferenceSession(str(tmp_path / "blobs.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["model_card"])["parity"]["classes_agree"]
    assert "**Parity** (onnx" in (tmp_path / "blobs.onnx.md").read_text()

"""Models you can take away: a trained arm as a checkpoint, as ONNX, or as TorchScript.

    >>> export_model(result, "shoes.pt")        # the finetune arm: weights, class names, config
    >>> classifier = load_model("shoes.pt")     # read back with weights_only=True: runs no code from the file
    >>> classifier.predict_image(rgb)           # ("Sneaker", 0.93) for a uint8 (H, W, 3) photo of any size
    >>> export_model(result, "shoes.onnx")      # or classifier.export("shoes.onnx"), or "shoes.torchscript"

An exported model takes one RGB image of any size as uint8 (H, W, 3) and returns the class
probabilities (classes,), with the engine's preprocessing inside: the centred square resized as the
dataset's images were made (`fit_square`, grey first when the dataset is grey), then to the input
size and normalised (`to_model_input`). The engine predicts a photo with the same module
(`Classifier.deployable`), so the exported model and the engine give the same answers. The class
names are in the model's metadata. To run an ONNX model with nothing but onnxruntime and Pillow:

    import json, numpy as np, onnxruntime as ort
    from PIL import Image, ImageOps
    session = ort.InferenceSession("shoes.onnx")
    classes = json.loads(session.get_modelmeta().custom_metadata_map["classes"])
    image = np.asarray(ImageOps.exif_transpose(Image.open("photo.jpg")).convert("RGB"))
    probabilities = session.run(None, {"image": image})[0]
    print(classes[probabilities.argmax()], probabilities.max())
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._paths import atomic_path, data_dir
from ..data.transforms import fit_square, to_model_input
from ..errors import ConfigError
from ..models.registry import BlockNet, create_backbone, get_spec
from ..training.comparison import ComparisonResult
from ..training.config import ExperimentConfig
from .card import PARITY_IMAGES, ModelCard, card_of, parity

__all__ = ["Classifier", "Deployable", "export_model", "keep_model", "kept_model", "load_model"]

FORMAT = "transferlab-classifier-1"
FORMATS = {".pt": "checkpoint", ".onnx": "onnx", ".torchscript": "torchscript", ".ts": "torchscript"}
GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert("L")


class Deployable(nn.Module):
    """uint8 RGB (H, W, 3) of any size -> class probabilities (classes,): preprocessing inside."""

    def __init__(self, model: nn.Module, stored_size: int, grey: bool, size: int, mean, std):
        super().__init__()
        self.model = model
        self.stored_size, self.grey, self.size = stored_size, grey, size
        self.mean, self.std = tuple(mean), tuple(std)
        self.register_buffer("luma", torch.tensor(GREY).view(3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(2, 0, 1)
        if self.grey:  # a grey dataset: the photo as the same kind of image
            x = (x.float() * self.luma).sum(0, keepdim=True).round().to(torch.uint8)
        x = fit_square(x, self.stored_size)  # as the dataset's images were made
        x = to_model_input(x.unsqueeze(0), self.size, self.mean, self.std)
        return self.model(x).softmax(1)[0]


@dataclass
class Classifier:
    """A trained network with what it needs to predict: class names, sizes, the config it came from."""

    model: BlockNet
    classes: tuple[str, ...]
    image_size: int  # the network's input size
    config: dict
    test_accuracy: float
    stored_size: int  # the side of the dataset's images (a photo is made into one of these first)
    grey: bool  # the dataset's images are grey
    card: ModelCard | None = None  # what it is and how good (`transferlab.serve.card`)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Dataset images, uint8 (N, C, H, W) -> class probabilities (N, classes)."""
        spec = self.model.spec
        return self.model(to_model_input(images.cpu(), self.image_size, spec.mean, spec.std)).softmax(1)

    def predict(self, images: torch.Tensor) -> list[tuple[str, float]]:
        """The most likely class and its probability for each dataset image."""
        p, i = self.probabilities(images).max(1)
        return [(self.classes[c], float(q)) for q, c in zip(p.tolist(), i.tolist())]

    def deployable(self) -> Deployable:
        spec = self.model.spec
        return Deployable(self.model.eval(), self.stored_size, self.grey, self.image_size, spec.mean, spec.std).eval()

    @torch.no_grad()
    def predict_image(self, image) -> tuple[str, float]:
        """A photo, uint8 RGB (H, W, 3) of any size -> (class, probability), as an exported model does."""
        x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image))
        if x.dim() != 3 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ConfigError(f"a photo is uint8 RGB (height, width, 3); got {x.dtype} {tuple(x.shape)}")
        p = self.deployable()(x)
        return self.classes[int(p.argmax())], float(p.max())

    def metadata(self) -> dict[str, str]:
        return {
            "classes": json.dumps(list(self.classes)),
            "input": "image: uint8 RGB (height, width, 3), any size",
            "output": "probabilities: float32 (classes,), in the order of 'classes'",
            "backbone": self.config.get("backbone", ""),
            "dataset": self.config.get("dataset", ""),
            "test_accuracy": f"{self.test_accuracy:.4f}",
            "made_by": "transferlab",
        } | ({"model_card": self.card.to_json()} if self.card else {})

    def export(self, path: str | Path, format: str | None = None) -> Path:
        """Write the model as ONNX (.onnx) or TorchScript (.torchscript), whole or not at all; with
        a card, measure the file's parity with the engine on held-out images and write the card
        into the file and beside it (shoes.onnx -> shoes.onnx.md)."""
        path = Path(path)
        format = format or export_format(path)
        if format not in ("onnx", "torchscript"):
            raise ConfigError(f"{format!r}: a model is exported as 'onnx' or 'torchscript'")
        write = _write_onnx if format == "onnx" else _write_torchscript
        with atomic_path(path) as tmp:
            write(self, tmp)
            if self.card is not None:
                self.card.parity = measure_parity(self, tmp, format)
                write(self, tmp)  # again, with the parity in its card
        if self.card is not None:
            self.card.write_beside(path)
        return path

    def held_out(self) -> torch.Tensor:
        """Test images of the dataset it was trained on, spread over the whole test split."""
        from ..data.registry import load_dataset

        images = load_dataset(self.config["dataset"], root=self.config.get("root")).test_images
        return images[torch.linspace(0, len(images) - 1, min(len(images), PARITY_IMAGES)).long()]


def measure_parity(classifier: Classifier, path: Path, format: str) -> dict:
    """The exported file at `path` against the engine, on the dataset's held-out images (`parity`)."""
    if format == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path))
        answer = lambda photo: session.run(None, {"image": photo})[0]  # noqa: E731
    else:
        loaded = torch.jit.load(str(path))
        answer = lambda photo: loaded(torch.from_numpy(photo)).detach().numpy()  # noqa: E731
    deployable = classifier.deployable()
    with torch.no_grad():
        return parity(deployable, answer, classifier.held_out(), format)


def export_format(path: str | Path) -> str:
    """ "checkpoint", "onnx" or "torchscript", from the file name; a `ConfigError` for any other."""
    if (format := FORMATS.get(Path(path).suffix.lower())) is None:
        raise ConfigError(f"cannot tell the format of {Path(path).name}: name it .onnx, .torchscript or .pt")
    return format


def _write_onnx(classifier: Classifier, path: Path) -> None:
    import onnx
    from torch.export import Dim

    example = torch.zeros(96, 128, 3, dtype=torch.uint8)
    dims = {"image": {0: Dim("height", min=2, max=20_000), 1: Dim("width", min=2, max=20_000)}}
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                classifier.deployable(),
                (example,),
                dynamo=True,
                input_names=["image"],
                output_names=["probabilities"],
                dynamic_shapes=dims,
                external_data=False,
                verbose=False,
            )
    finally:
        quiet.level = level
    model = program.model_proto
    for key, value in classifier.metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _write_torchscript(classifier: Classifier, path: Path) -> None:
    deployable = classifier.deployable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is in maintenance; it still runs everywhere libtorch does
        deployable.model = torch.jit.trace(
            classifier.model.eval(), torch.zeros(1, 3, classifier.image_size, classifier.image_size)
        )
        scripted = torch.jit.script(deployable)
        torch.jit.save(scripted, str(path), _extra_files={"metadata.json": json.dumps(classifier.metadata())})


def classifier_of(result: ComparisonResult, arm: str = "finetune") -> Classifier:
    """The trained `arm` of an in-process comparison as a `Classifier` (it shares the network)."""
    if arm not in result.runs:
        raise ConfigError(f"no arm {arm!r} in this result; choose one of {', '.join(result.runs)}")
    run, ds = result.runs[arm], result.data.dataset
    if ds.modality != "image" or not hasattr(run, "model"):
        raise ConfigError(
            f"only image classifiers are exported (they take a photo); {arm} on {ds.name} is not one. "
            "Keep a text model with torch.save(result.runs[arm].model.state_dict(), path)."
        )
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(result.config).items()}
    return Classifier(
        run.model,
        tuple(ds.classes),
        result.config.size,
        config,
        float(run.test_accuracy),
        int(ds.train_images.shape[-1]),
        int(ds.train_images.shape[1]) == 1,
        card_of(result, arm),
    )


def export_model(result: ComparisonResult, path: str | Path, arm: str = "finetune") -> Path:
    """Write `arm`'s trained model: a checkpoint (.pt), ONNX (.onnx) or TorchScript (.torchscript)."""
    classifier, path = classifier_of(result, arm), Path(path)
    if export_format(path) != "checkpoint":
        return classifier.export(path)
    save_checkpoint(classifier, path)
    classifier.card.write_beside(path)
    return path


def save_checkpoint(classifier: Classifier, path: str | Path) -> Path:
    """Tensors, strings and numbers only, so that `load_model` reads it with `weights_only=True`."""
    c = classifier
    payload = {
        "format": FORMAT,
        "backbone": c.model.spec.name,
        "image_size": c.image_size,
        "classes": list(c.classes),
        "config": c.config,
        "test_accuracy": c.test_accuracy,
        "stored_size": c.stored_size,
        "grey": c.grey,
        "card": c.card.to_json() if c.card else "",
        "state_dict": {k: v.detach().cpu() for k, v in c.model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_model(path: str | Path) -> Classifier:
    """Read a checkpoint written by `export_model` (with `weights_only=True`) into a `Classifier`."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (not a checkpoint at all: say so, not how unpickling failed)
        raise ConfigError(f"{path} is not a transferlab checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a transferlab classifier (export one with export_model)")
    get_spec(payload["backbone"])  # a clear error when the backbone is not registered here
    model = create_backbone(payload["backbone"], num_classes=len(payload["classes"]), pretrained=False)
    model.load_state_dict(payload["state_dict"], strict=True)
    size = int(payload["image_size"])
    return Classifier(
        model.eval(),
        tuple(payload["classes"]),
        size,
        payload["config"],
        float(payload["test_accuracy"]),
        int(payload.get("stored_size", size)),
        bool(payload.get("grey", False)),
        ModelCard.from_json(payload["card"]) if payload.get("card") else None,
    )


def config_of(classifier: Classifier) -> ExperimentConfig:
    """The `ExperimentConfig` the classifier was trained with."""
    c = dict(classifier.config)
    if c.get("classes") is not None:
        c["classes"] = tuple(c["classes"])
    return ExperimentConfig(**c)


# --- the models a server keeps, so that a finished comparison's can be downloaded -----------------

KEEP_MB = 1000  # about fifty EfficientNet-Lite0 checkpoints; the oldest go first


def kept_model(key: str) -> Path | None:
    """The checkpoint kept for the comparison `key` (see `keep_model`), or None when there is none."""
    path = data_dir() / "models" / f"{key}.pt"
    return path if path.is_file() else None


def keep_model(result: ComparisonResult, key: str, arm: str = "finetune") -> Path | None:
    """Save `arm` of a finished comparison as data/cache/models/KEY.pt, then remove the oldest kept
    models beyond `$TRANSFERLAB_KEEP_MODELS_MB` (default `KEEP_MB`). None when there is no such arm
    (or it reads text: only image classifiers are exported)."""
    if arm not in result.runs or result.stopped or result.data.dataset.modality != "image":
        return None
    classifier = classifier_of(result, arm)
    path = save_checkpoint(classifier, data_dir() / "models" / f"{key}.pt")
    classifier.card.write_beside(path)  # KEY.pt.md: the page shows it before the download
    budget = int(os.environ.get("TRANSFERLAB_KEEP_MODELS_MB", KEEP_MB)) << 20
    kept = sorted(path.parent.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    total = 0
    for old in kept:
        total += old.stat().st_size
        if total > budget and old != path:
            old.unlink(missing_ok=True)
            old.with_name(f"{old.name}.md").unlink(missing_ok=True)
            for made in (data_dir() / "exports").glob(f"{old.stem}.*"):  # its ONNX and TorchScript files
                made.unlink(missing_ok=True)
    return path

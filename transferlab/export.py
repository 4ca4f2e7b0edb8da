"""Export a trained model as one file, and load it back to predict, safely.

The file holds only tensors, strings and numbers (the weights, the class names, the config as a
dict), so `torch.load(path, weights_only=True)` can read it: loading never runs code from the file.

    >>> export_model(result, "shoes.pt")                 # the finetune run of a comparison
    >>> classifier = load_model("shoes.pt")
    >>> classifier.predict(images)                        # [("Sneaker", 0.93), ...]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .backbones import BlockNet, create_backbone, get_spec
from .comparison import ComparisonResult
from .config import ExperimentConfig
from .errors import ConfigError
from .transforms import to_model_input

__all__ = ["Classifier", "export_model", "load_model"]

FORMAT = "transferlab-classifier-1"


def export_model(result: ComparisonResult, path: str | Path, arm: str = "finetune") -> Path:
    """Write `arm`'s trained model from a comparison to `path` (written whole, then renamed)."""
    if arm not in result.runs:
        raise ConfigError(f"no arm {arm!r} in this result; choose one of {', '.join(result.runs)}")
    run = result.runs[arm]
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(result.config).items()}
    payload = {
        "format": FORMAT,
        "backbone": result.config.backbone,
        "image_size": result.config.size,
        "classes": list(result.data.dataset.classes),
        "arm": arm,
        "config": config,
        "test_accuracy": float(run.test_accuracy),
        "state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
    }
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


@dataclass
class Classifier:
    """A loaded model with what it needs to predict: class names and input size."""

    model: BlockNet
    classes: tuple[str, ...]
    image_size: int
    config: dict
    test_accuracy: float

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W) -> class probabilities (N, classes)."""
        spec = self.model.spec
        x = to_model_input(images.cpu(), self.image_size, spec.mean, spec.std)
        return self.model(x).softmax(1)

    def predict(self, images: torch.Tensor) -> list[tuple[str, float]]:
        """The most likely class and its probability for each image."""
        p, i = self.probabilities(images).max(1)
        return [(self.classes[c], float(q)) for q, c in zip(p.tolist(), i.tolist())]


def load_model(path: str | Path) -> Classifier:
    """Read a file written by `export_model` (with `weights_only=True`) into a `Classifier`."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a transferlab classifier (export one with export_model)")
    get_spec(payload["backbone"])  # a clear error when the backbone is not registered here
    model = create_backbone(payload["backbone"], num_classes=len(payload["classes"]), pretrained=False)
    model.load_state_dict(payload["state_dict"], strict=True)
    return Classifier(
        model.eval(),
        tuple(payload["classes"]),
        int(payload["image_size"]),
        payload["config"],
        float(payload["test_accuracy"]),
    )


def config_of(classifier: Classifier) -> ExperimentConfig:
    """The `ExperimentConfig` the classifier was trained with."""
    c = dict(classifier.config)
    if c.get("classes") is not None:
        c["classes"] = tuple(c["classes"])
    return ExperimentConfig(**c)

"""A model card with every model taken away: what it tells apart, what it learned from, how good it
is with its interval, where it goes wrong, and whether the exported file answers as the engine does.

    >>> card = card_of(result)            # from a finished comparison's finetune arm
    >>> print(card.markdown())
    >>> card.parity                       # set at export: {"format": "onnx", "images": 32, ...}

An export writes the card into the file (the "model_card" entry of the ONNX metadata, of
TorchScript's extra file metadata.json, or of the checkpoint) and beside it as Markdown
(`shoes.onnx` -> `shoes.onnx.md`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..models.registry import get_spec
from ..stats import CONFIDENCE, accuracy_interval
from ..training.comparison import ComparisonResult

__all__ = ["ModelCard", "card_of", "parity"]

CONFUSIONS = 3  # the most frequent mistakes a card lists
PARITY_IMAGES = 32  # held-out test images the exported file and the engine both answer


@dataclass
class ModelCard:
    backbone: str
    dataset: str
    freeze_depth: int
    pretrained: str  # the weights it started from, in words
    classes: list[str]
    trained_per_class: dict[str, int]  # training images of each class
    test_images: int
    test_accuracy: float
    test_low: float
    test_high: float
    confusions: list[tuple[str, str, int]]  # (true class, predicted class, test images), most frequent first
    parity: dict | None = field(default=None)  # measured at export (see `parity`)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        card = cls(**json.loads(text))
        card.confusions = [tuple(c) for c in card.confusions]
        return card

    def markdown(self) -> str:
        counts = sorted(set(self.trained_per_class.values()))
        per_class = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        lines = [
            f"# {self.backbone} on {self.dataset}, freeze depth {self.freeze_depth}",
            "",
            f"- **Classes** ({len(self.classes)}): {', '.join(self.classes)}",
            f"- **Trained on** {per_class} images per class ({sum(self.trained_per_class.values())} in all)",
            f"- **Started from** {self.pretrained}",
            f"- **Test accuracy** {self.test_accuracy:.1%} on {self.test_images} held-out images "
            f"({CONFIDENCE:.0%} interval {self.test_low:.1%} to {self.test_high:.1%})",
        ]
        if self.confusions:
            mistakes = "; ".join(f"{true} taken for {said} ({n} times)" for true, said, n in self.confusions)
            lines.append(f"- **Most frequent mistakes** {mistakes}")
        else:
            lines.append("- **Most frequent mistakes** none on the test images")
        if self.parity:
            p = self.parity
            agree = "every predicted class agreed" if p["classes_agree"] else "some predicted classes differ"
            lines.append(
                f"- **Parity** ({p['format']}, measured at export on {p['images']} held-out images): the largest "
                f"difference in probability from the engine is {p['largest_difference']:.1e}; {agree}"
            )
        return "\n".join(lines) + "\n"

    def write_beside(self, path: str | Path) -> Path:
        """The card as Markdown beside the model file: shoes.onnx -> shoes.onnx.md."""
        beside = Path(path).with_name(f"{Path(path).name}.md")
        beside.write_text(self.markdown())
        return beside


def card_of(result: ComparisonResult, arm: str = "finetune") -> ModelCard:
    """The card of a finished comparison's `arm`, from its training images and test predictions."""
    config, data, run = result.config, result.data, result.runs[arm]
    classes = list(data.dataset.classes)
    accuracy, low, high = accuracy_interval(result.correct(arm))
    labels, said = data.test_labels.cpu(), run.test_predictions.cpu()
    pairs = torch.stack([labels, said], 1)[labels != said]
    confusions = []
    if len(pairs):
        found, counts = torch.unique(pairs, dim=0, return_counts=True)
        order = torch.argsort(counts, descending=True, stable=True)[:CONFUSIONS]
        confusions = [(classes[int(found[i, 0])], classes[int(found[i, 1])], int(counts[i])) for i in order]
    trained = torch.bincount(data.train_labels.cpu(), minlength=len(classes)).tolist()
    spec = get_spec(config.backbone)
    scratch = arm in ("scratch", "scratch_tuned")
    return ModelCard(
        config.backbone,
        config.dataset,
        0 if scratch else config.freeze_depth,
        "random weights (trained from scratch)" if scratch else f"{spec.pretrained_on} ({spec.weights_source})",
        classes,
        dict(zip(classes, trained)),
        len(labels),
        accuracy,
        low,
        high,
        confusions,
    )


def photos(images: torch.Tensor) -> list[np.ndarray]:
    """Dataset images, uint8 (N, C, H, W), as the RGB photos (H, W, 3) an exported model takes."""
    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    return [np.ascontiguousarray(im.permute(1, 2, 0).numpy()) for im in rgb]


def parity(engine, answer, images: torch.Tensor, format: str) -> dict:
    """How far the exported file (`answer(photo) -> probabilities`) is from the engine
    (`engine(photo)`) on held-out images: the largest difference in any probability, and whether
    every predicted class agreed."""
    largest, agree = 0.0, True
    for photo in photos(images[:PARITY_IMAGES]):
        ours = engine(torch.from_numpy(photo)).detach().numpy()
        theirs = np.asarray(answer(photo))
        largest = max(largest, float(np.abs(ours - theirs).max()))
        agree = agree and int(ours.argmax()) == int(theirs.argmax())
    return {
        "format": format,
        "images": min(len(images), PARITY_IMAGES),
        "largest_difference": largest,
        "classes_agree": agree,
    }

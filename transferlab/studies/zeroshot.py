"""Zero-shot classification: no labels for the target classes at all, only what pretraining knew.

    text = zero_shot(ExperimentConfig(dataset="wordnet", backbone="minilm_l6"))
    text.accuracy                     # definitions by cosine similarity to the kinds' names
    zero_shot(config, prompts="descriptions").accuracy   # ... to a sentence describing each kind
    image = zero_shot(ExperimentConfig(dataset="fashion_mnist"))   # via ImageNet's own classes

- **Text**: a sentence encoder maps any text to a vector, and texts that mean similar things get
  similar vectors. Each class is described in words (its name, or a short description); a text
  goes to the class whose description's vector is nearest (cosine similarity).
- **Images**: an ImageNet classifier already names 1 000 things. Each Fashion-MNIST class is the
  set of ImageNet classes that name the same things (a sneaker is ImageNet's "running shoe");
  an image goes to the class whose ImageNet classes get the most probability.

Both are measured on the same test split as `compare(config)`, so a zero-shot accuracy sits on the
same axis as the few-shot arms: how many labels per class is a good zero-shot guess worth?
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd
import torch
import torch.nn.functional as F

from ..data.transforms import to_model_input
from ..device import autocast, bf16_passes, pick_device
from ..errors import ConfigError
from ..models.registry import create_backbone, get_spec
from ..models.textnet import MaskedMeanPool, tokenize
from ..training.config import ExperimentConfig
from ..training.features import EVAL_BATCH
from ..training.splits import prepare_data
from .predict import _imagenet_model, imagenet_classes

__all__ = ["FASHION_TO_IMAGENET", "ZeroShot", "encode_texts", "labels_worth", "zero_shot"]

# Fashion-MNIST's classes as ImageNet names them (torchvision's class names). No ImageNet class
# names a plain shirt; "suit" and "Windsor tie" are what ImageNet shows shirts with.
FASHION_TO_IMAGENET = {
    "T-shirt/top": ("jersey",),
    "Trouser": ("jean",),
    "Pullover": ("sweatshirt", "cardigan"),
    "Dress": ("gown", "overskirt", "hoopskirt"),
    "Coat": ("trench coat", "lab coat", "fur coat"),
    "Sandal": ("sandal",),
    "Shirt": ("suit", "Windsor tie"),
    "Sneaker": ("running shoe",),
    "Bag": ("purse", "backpack", "mailbag"),
    "Ankle boot": ("cowboy boot",),
}


@dataclass
class ZeroShot:
    """What `zero_shot` returns.

    Attributes:
        name: "zero-shot (names)", "zero-shot (descriptions)" or "zero-shot (ImageNet classes)".
        prompts: per class, what it was recognised by (texts, or ImageNet class names).
        accuracy: on the test split `compare(config)` measures.
        predictions, labels: per test example.
    """

    name: str
    prompts: dict[str, tuple[str, ...]]
    accuracy: float
    predictions: torch.Tensor
    labels: torch.Tensor

    def row(self) -> dict:
        """A line for a table beside the few-shot arms: no labels per class."""
        return {"arm": self.name, "per_class": 0, "test_accuracy": self.accuracy}


@torch.no_grad()
def encode_texts(
    texts: Sequence[str] | torch.Tensor,
    backbone: str = "minilm_l6",
    device: torch.device | str = "cpu",
    precision: str = "auto",
) -> torch.Tensor:
    """Texts (or their token ids) -> unit-length sentence vectors (N, hidden): the pretrained
    encoder's blocks and the mean of the real tokens' vectors, as the encoder was trained.
    `precision` as in `ExperimentConfig` ("fp32" for the exact vectors)."""
    if get_spec(backbone).modality != "text":
        raise ConfigError(f"{backbone} is not a text encoder; use minilm_l6")
    device = torch.device(device)
    model = _text_encoder(backbone).to(device)
    ids = texts if isinstance(texts, torch.Tensor) else tokenize(list(texts))
    pool, bf16 = MaskedMeanPool(), bf16_passes(device, precision)[1]
    out = []
    for batch in ids.to(device).split(EVAL_BATCH):
        with autocast(device, bf16):
            out.append(pool(model.forward_blocks(batch)).float())
    return F.normalize(torch.cat(out), dim=1)


@functools.cache
def _text_encoder(backbone: str):
    return create_backbone(backbone, num_classes=1, pretrained=True).eval()


def zero_shot(
    config: ExperimentConfig, prompts: str | Mapping[str, Sequence[str]] = "names", size: int | None = None
) -> ZeroShot:
    """Classify `config`'s test split with no training at all.

    Args:
        config: the experiment whose test split to measure (its dataset, classes and
            test_per_class; for text, its backbone is the encoder).
        prompts: text: "names" (each class's name), "descriptions" (the dataset's sentence per
            class, e.g. `wordnet.WORDNET_KINDS`), or class name -> texts (their vectors are
            averaged). Images: "names" uses `FASHION_TO_IMAGENET`; or class name -> ImageNet
            class names.
        size: images only: the input size for the ImageNet classifier (default: the size its
            weights were trained at; at the few-shot runs' 64 px it sees far less).

    Returns:
        A `ZeroShot`.
    """
    config.validate()
    data = prepare_data(replace(config, per_class=2))  # the test split alone matters here
    classes = data.dataset.classes
    if isinstance(prompts, str):
        prompts = _named_prompts(config, data.dataset, prompts)
    missing = [c for c in classes if c not in prompts]
    if missing:
        raise ConfigError(f"give prompts for every class; missing: {', '.join(missing)}")
    prompts = {c: tuple(prompts[c]) for c in classes}
    if data.dataset.modality == "text":
        scores = _text_scores(config.backbone, data.test_images, prompts)
        kind = "names" if all(p == (c,) for c, p in prompts.items()) else "descriptions"
    else:
        scores = _image_scores(config.backbone, data.test_images, prompts, size)
        kind = "ImageNet classes"
    predictions = scores.argmax(1)
    accuracy = (predictions == data.test_labels).float().mean().item()
    return ZeroShot(f"zero-shot ({kind})", prompts, accuracy, predictions, data.test_labels)


def _named_prompts(config: ExperimentConfig, dataset, prompts: str) -> dict[str, tuple[str, ...]]:
    if dataset.modality == "image":
        if prompts != "names" or config.dataset != "fashion_mnist":
            raise ConfigError(
                "zero-shot on images needs, per class, the ImageNet classes that name it: pass "
                "prompts={class: (ImageNet class names, ...)} (built in for fashion_mnist only)"
            )
        return dict(FASHION_TO_IMAGENET)
    if prompts == "names":
        return {c: (c,) for c in dataset.classes}
    if prompts == "descriptions" and config.dataset == "wordnet":
        from ..data.wordnet import WORDNET_KINDS

        return {name: (text,) for name, text in WORDNET_KINDS.values()}
    raise ConfigError(
        f'prompts must be "names", "descriptions" (wordnet) or a dict of texts per class; got {prompts!r}'
    )


def _text_scores(backbone: str, ids: torch.Tensor, prompts: dict[str, tuple[str, ...]]) -> torch.Tensor:
    """Cosine similarity of each text to each class's mean prompt vector."""
    classes = F.normalize(torch.stack([encode_texts(p, backbone).mean(0) for p in prompts.values()]), dim=1)
    return encode_texts(ids, backbone) @ classes.T


@torch.no_grad()
def _image_scores(backbone: str, images: torch.Tensor, prompts: dict[str, tuple[str, ...]], size: int | None):
    """Each class's score: the ImageNet probability of its ImageNet classes, summed."""
    names = {n: i for i, n in enumerate(imagenet_classes())}
    unknown = [n for p in prompts.values() for n in p if n not in names]
    if unknown:
        raise ConfigError(f"not ImageNet class names: {', '.join(unknown)} (see predict.imagenet_classes())")
    columns = torch.zeros(len(names), len(prompts))
    for j, p in enumerate(prompts.values()):
        columns[[names[n] for n in p], j] = 1
    spec = get_spec(backbone)
    size = size or spec.input_size
    model, device = _imagenet_model(backbone), pick_device("cpu")
    bf16 = bf16_passes(device, "auto")[1]
    out = []
    for batch in images.split(EVAL_BATCH):
        with autocast(device, bf16):
            out.append(model(to_model_input(batch, size, spec.mean, spec.std)).float().softmax(1))
    return torch.cat(out) @ columns


def labels_worth(accuracy: float, table: pd.DataFrame, arm: str = "finetune") -> float | None:
    """Labels per class at which `arm` first reaches `accuracy`, linear between the sizes measured
    (`table`: per_class and test_accuracy columns, averaged over seeds). The smallest size
    measured when `arm` is already there (zero-shot is worth at most that); None when never."""
    curve = table[table.arm == arm].groupby("per_class").test_accuracy.mean().sort_index()
    if curve.empty:
        raise ConfigError(f"no rows of arm {arm!r} in the table")
    below = None
    for n, acc in curve.items():
        if acc >= accuracy:
            if below is None:
                return float(n)
            n0, a0 = below
            return n0 + (n - n0) * (accuracy - a0) / (acc - a0)
        below = (n, acc)
    return None

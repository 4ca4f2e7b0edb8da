"""WordNet's definitions, labelled by the kind of thing they define: a real text task, offline.

Debian's `wordnet-base` ships WordNet 3.0. Every noun synset has a gloss (a definition, often
followed by examples after ";") and a lexicographer file: noun.animal, noun.food, noun.artifact,
... "Which kind of thing does this definition describe?" is then a labelled task with thousands
of examples per class:

    "a large feline of forests in most of Asia having a tawny coat with black stripes" -> animal

The dataset keeps the definition (the text before the first ";"), ten of the kinds, and a fixed
test split of 100 definitions per kind. Each kind also has a short description: what zero-shot
classification compares a definition with when it has no labels at all (`zeroshot`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .._paths import data_dir
from ..errors import Unavailable
from ..models.textnet import TEXT_LENGTH, tokenize, tokenizer_missing
from .registry import ImageDataset, register_dataset, split_fixed

__all__ = ["WORDNET_KINDS", "read_definitions"]

DEBIAN_WORDNET = Path("/usr/share/wordnet")


def debian_wordnet() -> Path:
    """Debian's wordnet-base files, or `$WNSEARCHDIR` (WordNet's own variable for them)."""
    return Path(os.environ.get("WNSEARCHDIR", DEBIAN_WORDNET))


TEST_PER_CLASS = 100

# WordNet 3.0's lexicographer file numbers (the second field of a data.noun line) of the ten
# kinds used, each with a description written for zero-shot classification.
WORDNET_KINDS = {
    4: ("act", "an act, action or activity that people do"),
    5: ("animal", "an animal, a living creature such as a mammal, bird, fish or insect"),
    6: ("artifact", "an artifact, an object made by people such as a tool, device, building or garment"),
    8: ("body", "a part of the body of a person or animal, such as an organ, bone or tissue"),
    10: ("communication", "communication, such as language, writing, speech, a message or a sign"),
    13: ("food", "food or drink, something people eat"),
    15: ("location", "a location, a place or region such as a city, country or area"),
    18: ("person", "a person, a kind of human being by role, occupation or character"),
    20: ("plant", "a plant, such as a tree, flower, herb, shrub or grass"),
    27: ("substance", "a substance, a material or chemical such as a metal, liquid or compound"),
}


def _wordnet_dir() -> Path | None:
    for folder in (debian_wordnet(), data_dir() / "wordnet"):
        if (folder / "data.noun").exists():
            return folder
    return None


def _missing() -> str | None:
    if _wordnet_dir() is None:
        return (
            f"WordNet's data.noun is not in {debian_wordnet()} or {data_dir() / 'wordnet'}: "
            "`apt-get install wordnet-base` (Debian)"
        )
    return tokenizer_missing()


def read_definitions(path: Path) -> list[tuple[int, str]]:
    """(lexicographer file number, definition) for every synset in a WordNet data file.

    A data line is `offset lex_filenum ss_type ... | gloss`; the definition is the gloss up to
    the first ";" (what follows are usage examples, which often name the thing itself).
    """
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  ") or " | " not in line:  # the licence header
                continue
            fields, gloss = line.split(" | ", 1)
            definition = gloss.split(";")[0].strip().strip('"').strip()
            if definition:
                out.append((int(fields.split(" ", 2)[1]), definition))
    return out


@register_dataset(
    "wordnet",
    "WordNet definitions: what kind of thing each defines (animal, food, artifact, ...), 10 classes, text",
    _missing,
    modality="text",
)
def _wordnet() -> ImageDataset:
    folder = _wordnet_dir()
    if folder is None:
        raise Unavailable(f"WordNet is not installed: {_missing()}")
    codes = list(WORDNET_KINDS)
    rows = [(codes.index(lex), text) for lex, text in read_definitions(folder / "data.noun") if lex in WORDNET_KINDS]
    texts = [text for _, text in rows]
    labels = torch.tensor([label for label, _ in rows])
    order = torch.arange(len(texts)).unsqueeze(1)  # split row numbers, so the texts follow them
    train_rows, train_labels, test_rows, test_labels = split_fixed(order, labels, TEST_PER_CLASS)
    train_texts = tuple(texts[i] for i in train_rows.flatten().tolist())
    test_texts = tuple(texts[i] for i in test_rows.flatten().tolist())
    return ImageDataset(
        name="wordnet",
        classes=tuple(name for name, _ in WORDNET_KINDS.values()),
        train_images=tokenize(train_texts, TEXT_LENGTH),
        train_labels=train_labels,
        test_images=tokenize(test_texts, TEXT_LENGTH),
        test_labels=test_labels,
        source=str(folder / "data.noun"),
        train_texts=train_texts,
        test_texts=test_texts,
    )

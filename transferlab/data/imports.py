"""Your own images into the kit: a zip, a folder or files sent class by class become a named dataset.

    python -m transferlab import photos.zip --name flowers      # then: compare --dataset flowers
    >>> report = import_images("photos/", "flowers")             # a zip, a folder, or {class: [(file, bytes)]}
    >>> print(report.summary())

What is read: one folder per class (images may sit in folders inside a class's folder), optionally
inside train/ and test/; folders that wrap it all are looked through, hidden and system files
(`.DS_Store`, `__MACOSX/`) ignored. Without train/ and test/, a fifth of each class (at least one
image) is held out as the test split, the same every time.

Nothing the user gives is written as it is. Each image is decoded by Pillow, brought to RGB the way
a viewer shows it (`folders.to_rgb`), shrunk to at most `STORED_SIZE` pixels a side and written as a
JPEG the kit encodes, under a file name the kit chooses, in the kit's data directory:
`imports/shared/NAME` for the command line (every session on the machine may use it), or
`imports/OWNER/NAME` for one dashboard session (named `OWNER/NAME`; no other session lists it).
Nothing is ever unpickled; a set is written to a staging folder and renamed into place whole.

Refused, with a message that says what to do and nothing written: an archive entry that climbs out
of its folder or names an absolute path; an upload, an expanded archive or a file count over the
`ImportLimits`; the server's import space full; fewer than two classes with images; class names
that differ only in case; a class with too few images to hold one out for testing; a class in
train/ missing from test/; nesting deeper than `ImportLimits.depth` inside a class; a bad name.
Skipped and reported, the rest imported: empty files, files that are not images, truncated or
damaged images, links, images over `ImportLimits.pixels`, files outside any class folder.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._paths import data_dir
from ..errors import ConfigError
from .folders import load_image_folder, to_rgb
from .registry import DatasetFacts, Entry, list_datasets, register_source
from .uploads import MB, File, ImportLimits, ImportRefused, Skip, Source, check_class_names, gather

__all__ = [
    "ImportLimits",
    "ImportRefused",
    "ImportReport",
    "delete_imported",
    "import_images",
    "imported_path",
    "list_imported",
]

STORED_SIZE = 256  # the longer side of a stored image; datasets are made from it at 128 px
FORMAT = "transferlab-imported-1"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
OWNER = re.compile(r"^([0-9a-f]{32}|shared)$")


@dataclass
class ImportReport:
    """What an import found and wrote: the dataset's name to use, its classes and counts, what was skipped."""

    name: str  # the dataset name to pick: NAME, or OWNER/NAME for a session's own set
    path: Path
    classes: tuple[str, ...]
    train_counts: dict[str, int]
    test_counts: dict[str, int]
    test_split: str  # "given" (train/ and test/ folders) or "made" (a fifth of each class)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)

    def summary(self) -> str:
        counts = ", ".join(f"{c} {self.train_counts[c]}+{self.test_counts[c]}" for c in self.classes)
        made = "held out by the kit" if self.test_split == "made" else "from your test/ folder"
        lines = [
            f"imported {self.name!r}: {len(self.classes)} classes, {sum(self.train_counts.values())} training "
            f"and {sum(self.test_counts.values())} test images (test split {made})",
            f"  per class (train+test): {counts}",
        ]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s):")
            lines += [f"    {f}: {why}" for f, why in self.skipped[:20]]
            lines += [f"    ... and {len(self.skipped) - 20} more"] if len(self.skipped) > 20 else []
        return "\n".join(lines)


def import_images(
    source: Source,
    name: str,
    owner: str | None = None,
    replace: bool = False,
    limits: ImportLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Read `source` (a zip file or its bytes, a folder, or {class: [(file name, bytes)]}), check it,
    and write it as the dataset `name` (of `owner`, a dashboard session, or shared when None).

    Raises `ImportRefused` (and writes nothing) when the upload cannot be used; unreadable files are
    skipped and listed in the report. `progress(done, total)` is called as images are decoded.
    """
    limits = limits or ImportLimits.from_env()
    target = _target(name, owner, replace)
    files, skipped = gather(source, limits)
    split, by_class = _layout(files, limits, skipped)
    images = {}  # (part, class) -> list of encoded JPEGs
    total, done = sum(len(v) for v in by_class.values()), 0
    for key, members in by_class.items():
        images[key] = []
        for f in members:
            try:
                images[key].append(_normalise(f.read(), limits))
            except Skip as why:
                skipped.append((f.shown, str(why)))
            done += 1
            if progress:
                progress(done, total)
    train, test = _split(images, split, skipped)
    written = sum(len(b) for part in (train, test) for blobs in part.values() for b in blobs)
    used = _bytes_under(imports_root())
    if used + written > limits.server_bytes:
        raise ImportRefused(
            f"the server's space for imported images is full ({used / MB:.0f} MB of "
            f"{limits.server_bytes / MB:.0f} MB used; this set needs {written / MB:.0f} MB): delete a set "
            "you no longer need (python -m transferlab remove NAME) or ask for a larger $TRANSFERLAB_IMPORTS_MB"
        )
    classes = tuple(sorted(train))
    manifest = {
        "format": FORMAT,
        "name": name,
        "owner": owner or "shared",
        "created": time.time(),
        "classes": list(classes),
        "train": {c: len(train[c]) for c in classes},
        "test": {c: len(test[c]) for c in classes},
        "test_split": "given" if split else "made",
        "skipped": skipped,
    }
    _write(target, train, test, manifest, replace)
    return ImportReport(
        _reference(name, owner),
        target,
        classes,
        manifest["train"],
        manifest["test"],
        manifest["test_split"],
        skipped,
    )


def imports_root() -> Path:
    return data_dir() / "imports"


def imported_path(reference: str) -> Path | None:
    """The folder of an imported set named `NAME` (shared) or `OWNER/NAME`, or None when there is none."""
    owner, _, name = reference.rpartition("/")
    owner = owner or "shared"
    if not (NAME.match(name) and OWNER.match(owner)):
        return None
    path = imports_root() / owner / name
    return path if (path / "dataset.json").is_file() else None


def read_manifest(path: Path) -> dict:
    return json.loads((path / "dataset.json").read_text())


def list_imported(owner: str | None = None) -> list[str]:
    """Names of the shared imported sets, and of `owner`'s own (as OWNER/NAME), sorted."""
    found = []
    for who in ["shared"] + ([owner] if owner and OWNER.match(owner) else []):
        folder = imports_root() / who
        if folder.is_dir():
            found += [_reference(p.name, owner if who != "shared" else None) for p in folder.iterdir()]
    return sorted(r for r in found if imported_path(r))


def delete_imported(reference: str) -> None:
    """Remove an imported set (`NAME` or `OWNER/NAME`) and everything in its folder."""
    path = imported_path(reference)
    if path is None:
        raise ConfigError(f"there is no imported dataset {reference!r}")
    trash = imports_root() / ".staging" / f"deleted-{uuid.uuid4().hex}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    path.rename(trash)  # gone from every listing at once, then removed
    shutil.rmtree(trash, ignore_errors=True)


# --- checks -----------------------------------------------------------------------------------


def _reference(name: str, owner: str | None) -> str:
    return name if owner in (None, "shared") else f"{owner}/{name}"


def _target(name: str, owner: str | None, replace: bool) -> Path:

    if not NAME.match(name or ""):
        raise ImportRefused(
            f"{name!r} cannot name a dataset: use 1-40 letters, digits, '-' or '_', starting with a letter or digit"
        )
    if name in list_datasets(include_test=True, imported=False):
        raise ImportRefused(f"{name!r} is a built-in dataset: choose another name")
    if owner is not None and not OWNER.match(owner):
        raise ImportRefused(f"{owner!r} is not a session id")
    target = imports_root() / (owner or "shared") / name
    if (target / "dataset.json").exists() and not replace:
        raise ImportRefused(f"a dataset named {name!r} exists already: choose another name, or replace it (--replace)")
    return target


def _layout(files: list[File], limits: ImportLimits, skipped: list) -> tuple[bool, dict]:
    """(split given?, {(part, class): files}) where part is "train", "test" or "" (no split given)."""
    while len({f.parts[0] for f in files}) == 1 and all(len(f.parts) > 2 for f in files):
        top = files[0].parts[0]
        if top.lower() in ("train", "test"):
            break
        files = [File(f.parts[1:], f.size, f.read) for f in files]  # a folder that wraps it all
    tops = {f.parts[0].lower() for f in files if len(f.parts) > 1}
    split = {"train", "test"} <= tops
    by_class: dict[tuple[str, str], list[File]] = {}
    for f in files:
        parts = f.parts
        if split:
            if parts[0].lower() not in ("train", "test"):
                skipped.append((f.shown, "outside train/ and test/"))
                continue
            part, parts = parts[0].lower(), parts[1:]
        else:
            part = ""
        if len(parts) < 2:
            skipped.append((f.shown, "not inside a class folder"))
            continue
        if len(parts) - 2 > limits.depth:
            raise ImportRefused(
                f"{f.shown} is {len(parts) - 2} folders deep inside its class folder; at most {limits.depth} "
                "are read: put each class's images in (or close under) one folder"
            )
        by_class.setdefault((part, parts[0]), []).append(f)
    check_class_names({c for _, c in by_class})
    return split, by_class


def _normalise(data: bytes, limits: ImportLimits) -> bytes:
    """An image file's bytes -> a JPEG the kit encodes (RGB, at most STORED_SIZE a side), or `Skip`."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise Skip("an empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > limits.pixels:
                    raise Skip(f"{w} x {h} pixels, over the {limits.pixels / 1e6:.0f} megapixel limit")
                im.draft("RGB", (STORED_SIZE, STORED_SIZE))  # JPEGs decode straight at a smaller size
                rgb = to_rgb(im)
                rgb.thumbnail((STORED_SIZE, STORED_SIZE), Image.Resampling.BILINEAR)
                out = io.BytesIO()
                rgb.save(out, "JPEG", quality=95)
                return out.getvalue()
    except Skip:
        raise
    except Image.DecompressionBombError as error:
        raise Skip(f"too many pixels to open safely ({error})"[:160]) from None
    except UnidentifiedImageError:
        raise Skip("not an image Pillow can read") from None
    except Exception as error:  # noqa: BLE001 (Pillow raises many kinds; each is one bad file)
        raise Skip(f"damaged, truncated or unusual ({type(error).__name__}: {error})"[:160]) from None


def _split(images: dict, split: bool, skipped: list) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
    """({class: train JPEGs}, {class: test JPEGs}); refuses what cannot make a dataset."""
    empty = sorted({c for (_, c), blobs in images.items() if not blobs})
    skipped += [(f"{c}/", "no readable images: the class is left out") for c in empty]
    if split:
        train = {c: b for (part, c), b in images.items() if part == "train" and b}
        test = {c: b for (part, c), b in images.items() if part == "test" and b}
        if missing := sorted(set(train) - set(test)):
            raise ImportRefused(
                f"class(es) {', '.join(missing)} have no readable images in test/: add some there, or "
                "leave out train/ and test/ to have a test split made"
            )
    else:
        train, test = {}, {}
        for (_, c), blobs in images.items():
            if not blobs:
                continue
            if len(blobs) < 2:
                raise ImportRefused(
                    f"class {c!r} has 1 readable image: each class needs at least 2 (one to train on, one to test)"
                )
            order = np.random.default_rng(0).permutation(len(blobs))
            held = set(order[: max(1, round(len(blobs) / 5))].tolist())
            test[c] = [b for i, b in enumerate(blobs) if i in held]
            train[c] = [b for i, b in enumerate(blobs) if i not in held]
    if len(train) < 2:
        found = ", ".join(f"{c}: {len(b)}" for c, b in sorted(train.items())) or "none"
        also = f" ({', '.join(empty)} had no readable images)" if empty else ""
        raise ImportRefused(
            f"need at least 2 classes with readable images, found {found}{also}: put each class's images "
            "in a folder named after it"
        )
    return train, test


def _write(target: Path, train: dict, test: dict, manifest: dict, replace: bool) -> None:
    """Write the set into a staging folder, then rename it into place: a reader sees all of it or none."""
    staging = imports_root() / ".staging" / uuid.uuid4().hex
    try:
        for part, blobs_by_class in (("train", train), ("test", test)):
            for c, blobs in blobs_by_class.items():
                folder = staging / part / c
                folder.mkdir(parents=True)
                for i, blob in enumerate(blobs):
                    (folder / f"{i:05d}.jpg").write_bytes(blob)
        (staging / "dataset.json").write_text(json.dumps(manifest, indent=1))
        target.parent.mkdir(parents=True, exist_ok=True)
        if replace and target.exists():
            old = staging.with_name(f"replaced-{uuid.uuid4().hex}")
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                staging.rename(target)
            except OSError:
                raise ImportRefused(
                    f"a dataset named {manifest['name']!r} was just imported: choose another name"
                ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def load_imported(reference: str):
    """The `ImageDataset` of an imported set, its classes in the order of its manifest."""

    path = imported_path(reference)
    if path is None:
        raise ConfigError(f"there is no imported dataset {reference!r}: import one with python -m transferlab import")
    return load_image_folder(path, name=reference)


def _find(reference: str) -> Entry | None:
    """The registry's entry of an imported set, known from its manifest without loading it."""
    if (path := imported_path(reference)) is None:
        return None
    m = read_manifest(path)
    train, test = sum(m["train"].values()), sum(m["test"].values())
    about = f"imported images: {len(m['classes'])} classes, {train} training and {test} test images"
    version = f"imported {m['created']!r}"
    classes = tuple(m["classes"])  # the stored images were re-encoded by the import: none is skipped on loading
    facts = DatasetFacts(classes, tuple(m["train"][c] for c in classes), tuple(m["test"][c] for c in classes))
    return Entry(
        about, lambda: load_imported(reference), lambda: None, version=lambda root: version, facts=lambda: facts
    )


register_source(list_imported, _find)

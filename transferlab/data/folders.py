"""Your own photos: a folder with one sub-folder of images per class becomes an `ImageDataset`.

    photos/cats/*.jpg, photos/dogs/*.jpg                    a fifth of each class held out as the test split
    photos/train/cats/*.jpg, photos/test/cats/*.jpg         the test split chosen by you

Every file Pillow cannot read, for whatever reason, is skipped and named in `ImageDataset.skipped`
(and in a warning), so one bad file never stops a class from loading.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .registry import BUILTIN_VERSION, ImageDataset, register_dataset, split_fixed
from .transforms import fit_square

__all__ = ["FOLDER_IMAGE_SIZE", "IMAGE_SUFFIXES", "folder_version", "load_image", "load_image_folder", "to_rgb"]

# Photos (a folder's, or a downloaded photo dataset's) are stored at this size, resized per batch later.
FOLDER_IMAGE_SIZE = 128
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def to_rgb(im):
    """A Pillow image in any mode -> RGB as a viewer shows it: EXIF rotation applied, 16-bit and
    float images scaled to 8 bits (not clipped), transparency laid on white, CMYK and palettes converted."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        im = Image.fromarray((a.clip(0, top) * (255.0 / top)).round().astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return im.convert("RGB")


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """One image file -> (3, size, size) uint8: the centred square, resized (`fit_square`)."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = torch.from_numpy(np.asarray(to_rgb(im)).copy()).permute(2, 0, 1)
    return fit_square(rgb, size)


def _read_class_folders(folder: Path, classes: tuple[str, ...] | None, size: int):
    """(classes, images, labels, skipped): every file Pillow cannot read, for whatever reason (a
    truncated file, a decompression bomb, a folder it may not list), is skipped and named."""
    try:
        found = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    except OSError as error:
        raise ConfigError(f"cannot read the folder {folder} ({error.strerror or error})") from None
    if classes is not None and (missing := [c for c in classes if c not in found]):
        raise ConfigError(
            f"{folder} has no folder for class(es) {', '.join(missing)}: every class in train/ needs "
            "its own folder of test images in test/"
        )
    classes = classes or found
    if not classes:
        raise ConfigError(f"{folder} has no class sub-folders: put each class's images in a folder named after it")
    images, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        try:
            files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as error:
            skipped.append(f"{name}/ ({error.strerror or error})")
            continue
        for path in files:
            try:
                images.append(load_image(path, size))
                labels.append(label)
            except Exception as error:  # noqa: BLE001 (Pillow raises many kinds; each is one bad file)
                skipped.append(f"{name}/{path.name} ({type(error).__name__})")
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) in {folder}: {shown}", stacklevel=3)
    if not images:
        raise ConfigError(f"no readable images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {folder}")
    return classes, torch.stack(images), torch.tensor(labels), tuple(skipped)


def load_image_folder(root: str | Path, size: int = FOLDER_IMAGE_SIZE, name: str = "image_folder") -> ImageDataset:
    """Class sub-folders of images (optionally inside train/ and test/) -> an `ImageDataset`.

    Without train/ and test/ folders, a fifth of each class (at least one image) is held out
    as the fixed test split.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder: give a folder with one sub-folder of images per class")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes, train_x, train_y, skipped = _read_class_folders(root / "train", None, size)
        _, test_x, test_y, skipped_test = _read_class_folders(root / "test", classes, size)
        _need_two_classes(root / "train", classes, train_y, 1)
        _need_two_classes(root / "test", classes, test_y, 1)
        skipped += skipped_test
    else:
        classes, images, labels, skipped = _read_class_folders(root, None, size)
        counts = _need_two_classes(root, classes, labels, 2)
        train_x, train_y, test_x, test_y = split_fixed(images, labels, max(1, int(counts.min()) // 5))
    return ImageDataset(name, classes, train_x, train_y, test_x, test_y, source=str(root), skipped=skipped)


def _need_two_classes(folder: Path, classes: tuple[str, ...], labels: torch.Tensor, least: int) -> torch.Tensor:
    """Per-class counts; a `ConfigError` unless every class has `least` readable images and there are two."""
    counts = torch.bincount(labels, minlength=len(classes))
    if len(classes) < 2 or int(counts.min()) < least:
        raise ConfigError(
            f"{folder}: need at least 2 classes with at least {least} readable image{'s' * (least > 1)} each; "
            "found " + ", ".join(f"{c}: {int(n)}" for c, n in zip(classes, counts))
        )
    return counts


def folder_version(root: str | Path | None) -> str:
    """A digest of every file's path, size and modification time under `root`: cheap, and it
    changes when a file is added, removed or edited."""
    if root is None:
        return BUILTIN_VERSION
    digest = hashlib.sha1()
    folder = Path(root).expanduser().resolve()
    for path in sorted(folder.rglob("*")):
        try:
            stat = path.stat()
        except OSError:  # a dangling link: the loader skips it too
            continue
        if path.is_file():
            digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return f"folder {digest.hexdigest()[:16]}"


@register_dataset(
    "image_folder",
    "your own photos: a folder with one sub-folder of images per class",
    lambda: "give the folder with --root (one sub-folder of images per class)",
    version=folder_version,
)
def _image_folder(root: str | None) -> ImageDataset:
    if root is None:
        raise ConfigError("image_folder needs a folder: pass root=... (--root on the command line)")
    return load_image_folder(root)

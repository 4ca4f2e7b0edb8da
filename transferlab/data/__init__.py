"""Data: the dataset registry and `ImageDataset` first, then the sets that register into it
(the built-in ones, WordNet's definitions, a folder of your photos, the sets a person imported),
the checks on uploads, and the tensor transforms. Importing this package registers every set."""

from . import builtin, imports, wordnet  # noqa: F401  (they register)
from .folders import FOLDER_IMAGE_SIZE, IMAGE_SUFFIXES, load_image, load_image_folder
from .registry import (
    BUILTIN_VERSION,
    ImageDataset,
    dataset_modality,
    dataset_status,
    dataset_version,
    describe_dataset,
    list_datasets,
    load_dataset,
    select_classes,
    stratified_indices,
)

__all__ = [
    "BUILTIN_VERSION",
    "FOLDER_IMAGE_SIZE",
    "IMAGE_SUFFIXES",
    "ImageDataset",
    "dataset_modality",
    "dataset_status",
    "dataset_version",
    "describe_dataset",
    "list_datasets",
    "load_dataset",
    "load_image",
    "load_image_folder",
    "select_classes",
    "stratified_indices",
]

"""transferlab: transfer learning you can run. The engine behind the lessons and the dashboard.

from transferlab import ExperimentConfig, compare
result = compare(ExperimentConfig(dataset="fashion_mnist", per_class=10, freeze_depth=4))
result.table
"""

from .backbones import BackboneSpec, BlockNet, backbone_status, create_backbone, get_spec, list_backbones
from .datasets import (
    ImageDataset,
    dataset_status,
    list_datasets,
    load_dataset,
    load_image_folder,
    select_classes,
    stratified_indices,
    to_model_input,
)
from .errors import ConfigError, StopTraining, TransferlabError, Unavailable
from .features import feature_cache
from .freezing import freeze_to, trainable_summary
from .predict import imagenet_classes, predict_imagenet
from .progress import Printer, TqdmProgress
from .training import (
    ARMS,
    Arm,
    Callback,
    ComparisonResult,
    ExperimentConfig,
    History,
    Record,
    Run,
    compare,
    pick_device,
    prepare_data,
    pretrain,
)

__all__ = [
    "ARMS",
    "Arm",
    "BackboneSpec",
    "BlockNet",
    "Callback",
    "ComparisonResult",
    "ConfigError",
    "ExperimentConfig",
    "History",
    "ImageDataset",
    "Printer",
    "Record",
    "Run",
    "StopTraining",
    "TqdmProgress",
    "TransferlabError",
    "Unavailable",
    "backbone_status",
    "compare",
    "create_backbone",
    "dataset_status",
    "feature_cache",
    "freeze_to",
    "get_spec",
    "imagenet_classes",
    "list_backbones",
    "list_datasets",
    "load_dataset",
    "load_image_folder",
    "pick_device",
    "predict_imagenet",
    "prepare_data",
    "pretrain",
    "select_classes",
    "stratified_indices",
    "to_model_input",
    "trainable_summary",
]

"""transferlab: transfer learning you can run. The engine behind the lessons and the dashboard.

from transferlab import ExperimentConfig, compare
result = compare(ExperimentConfig(dataset="fashion_mnist", per_class=10, freeze_depth=4))
result.table
"""

from .analysis import (
    DatasetFeatures,
    centroid_baseline,
    dataset_features,
    extract_features,
    nearest_centroid,
    pca_2d,
    pixel_baseline,
    transplant,
)
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
from .export import Classifier, export_model, load_model
from .features import feature_cache
from .freezing import freeze_to, trainable_summary
from .jobs import Job, JobQueue
from .predict import imagenet_classes, predict_imagenet
from .progress import Printer, TqdmProgress
from .sweeps import layer_transfer, sweep
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
    device_name,
    pick_device,
    prepare_data,
    pretrain,
)

__all__ = [
    "Job",
    "JobQueue",
    "device_name",
    "ARMS",
    "Arm",
    "BackboneSpec",
    "BlockNet",
    "Callback",
    "Classifier",
    "ComparisonResult",
    "ConfigError",
    "DatasetFeatures",
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
    "centroid_baseline",
    "compare",
    "create_backbone",
    "dataset_features",
    "dataset_status",
    "export_model",
    "extract_features",
    "feature_cache",
    "freeze_to",
    "get_spec",
    "imagenet_classes",
    "layer_transfer",
    "list_backbones",
    "list_datasets",
    "load_dataset",
    "load_image_folder",
    "load_model",
    "nearest_centroid",
    "pca_2d",
    "pick_device",
    "pixel_baseline",
    "predict_imagenet",
    "prepare_data",
    "pretrain",
    "select_classes",
    "stratified_indices",
    "sweep",
    "to_model_input",
    "trainable_summary",
    "transplant",
]

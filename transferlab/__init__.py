"""transferlab: transfer learning you can run. The engine behind the lessons and the dashboard.

from transferlab import ExperimentConfig, compare
result = compare(ExperimentConfig(dataset="fashion_mnist", per_class=10, freeze_depth=4))
result.table
"""

from __future__ import annotations

import importlib

# Each public name and the module that defines it. A module is imported when one of its names is
# first used, so `import transferlab` is instant, the command line's restart under tcmalloc does
# not import torch twice, and a script that only trains never imports plotly or scikit-learn.
_EXPORTS = {
    "studies.analysis": [
        "DatasetFeatures",
        "accuracy_on",
        "adapt_batchnorm",
        "centroid_baseline",
        "dataset_features",
        "extract_features",
        "nearest_centroid",
        "pca_2d",
        "layer_transfer",
        "transplant",
    ],
    "training.baselines": ["BaselineRun"],
    "models.registry": ["BackboneSpec", "BlockNet", "backbone_status", "create_backbone", "get_spec", "list_backbones"],
    "training.callbacks": ["Callback", "History", "Printer", "Record", "TqdmProgress"],
    "studies.choosing": ["BackboneChoice", "compare_backbones"],
    "training.comparison": ["ComparisonResult", "compare", "pretrain", "still_improving"],
    "training.config": ["ARMS", "Arm", "ExperimentConfig", "Plan", "plan"],
    "data.registry": [
        "DatasetFacts",
        "ImageDataset",
        "dataset_facts",
        "dataset_modality",
        "dataset_status",
        "dataset_version",
        "list_datasets",
        "load_dataset",
        "select_classes",
        "stratified_indices",
    ],
    "device": ["device_name", "pick_device"],
    "errors": ["ConfigError", "StopTraining", "TrainingDiverged", "TransferlabError", "Unavailable"],
    "ready": ["Missing", "check_ready"],
    "training.prediction": ["Prediction"],
    "serve.export": ["Classifier", "export_model", "load_model"],
    "training.features": ["feature_cache"],
    "data.folders": ["load_image", "load_image_folder"],
    "models.freezing": ["freeze_to", "trainable_summary"],
    "serve.jobs": ["Job", "JobQueue"],
    "studies.multitask": ["MultitaskResult", "compare_multitask"],
    "training.outcome": ["Outcome"],
    "studies.predict": ["imagenet_classes", "predict_imagenet"],
    "training.run": ["Run"],
    "training.splits": ["ExperimentData", "prepare_data"],
    "stats": [
        "Difference",
        "best_within_noise",
        "difference_in",
        "holm",
        "paired_difference",
        "replicated_difference",
        "seed_difference",
        "spread",
    ],
    "training.store": ["RunStore"],
    "studies.grid": ["Grid", "run_sweep", "sweep"],
    "models.textnet": ["tokenize"],
    "training.tuned": ["TunedRun"],
    "data.transforms": ["augment_batch", "to_model_input"],
    "studies.zeroshot": ["ZeroShot", "encode_texts", "labels_worth", "zero_shot"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'transferlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # from now on a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

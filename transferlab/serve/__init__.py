"""What a server needs and the lessons do not: the job queue and its worker processes, the run
store, kept and exported models, imports of people's images. The dashboard reaches the engine
through this module and `transferlab` only."""

from .._paths import data_dir
from ..data.folders import IMAGE_SUFFIXES
from ..data.imports import ImportLimits, delete_imported, import_images, list_imported
from ..data.registry import describe_dataset
from ..studies.grid import Grid, map_table
from ..training.config import DEFAULT_STEPS, PATIENCE_CAP, TUNED_LRS
from ..training.settings import SETTINGS
from ..training.splits import val_count
from ..training.store import RunStore, default_store_path
from .export import kept_model, load_model
from .jobs import COMPARISON, DONE, FAILED, MAP_UNIT, QUEUED, RUNNING, STOPPED, Job, JobQueue, QueueFull

__all__ = [
    "COMPARISON",
    "MAP_UNIT",
    "DEFAULT_STEPS",
    "DONE",
    "FAILED",
    "IMAGE_SUFFIXES",
    "PATIENCE_CAP",
    "QUEUED",
    "RUNNING",
    "SETTINGS",
    "STOPPED",
    "TUNED_LRS",
    "Grid",
    "ImportLimits",
    "Job",
    "JobQueue",
    "QueueFull",
    "RunStore",
    "data_dir",
    "default_store_path",
    "delete_imported",
    "describe_dataset",
    "import_images",
    "kept_model",
    "list_imported",
    "load_model",
    "map_table",
    "val_count",
]

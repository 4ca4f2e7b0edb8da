"""What a server needs and the lessons do not: the job queue and its worker processes, the run
store, kept and exported models, imports of people's images (done by the workers: `tasks`). The
dashboard reaches the engine through this module and `transferlab` only."""

from .._paths import data_dir
from ..data.folders import IMAGE_SUFFIXES
from ..data.imports import ImportLimits, delete_imported, list_imported
from ..data.registry import describe_dataset
from ..studies.grid import Grid, map_table
from ..training.config import DEFAULT_STEPS, PATIENCE_CAP, TUNED_LRS
from ..training.settings import SETTINGS
from ..training.speed import estimate_seconds
from ..training.splits import val_count
from ..training.store import RunStore, default_store_path
from .export import kept_model, load_model
from .job import COMPARISON, DONE, EXPORT, FAILED, IMPORT, MAP_UNIT, QUEUED, RUNNING, STOPPED, Job, TaskJob
from .jobs import JobQueue, QueueFull
from .tasks import exported_path, stage_upload

__all__ = [
    "COMPARISON",
    "MAP_UNIT",
    "DEFAULT_STEPS",
    "DONE",
    "EXPORT",
    "FAILED",
    "IMPORT",
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
    "TaskJob",
    "data_dir",
    "default_store_path",
    "delete_imported",
    "estimate_seconds",
    "describe_dataset",
    "exported_path",
    "kept_model",
    "list_imported",
    "load_model",
    "map_table",
    "stage_upload",
    "val_count",
]

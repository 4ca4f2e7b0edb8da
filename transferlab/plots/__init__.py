"""Every figure the kit shows: pure functions from data to a Plotly `Figure`.

A lesson's cell shows `fig` and `plots.summary(fig)`; the dashboard's `chart(fig)` does the same. Neither draws
its own charts, so a lesson and the dashboard always show the same picture. `curves` holds
results against time and settings, `pictures` what a network sees and gets wrong, `style` what
every figure shares, `notebook` how figures are stored in a lesson, `summary` each figure in one
sentence (`plots.summary(fig)`), written under it for a screen reader.
"""

from .choices import backbone_choice, multitask_bars, predictions_histogram
from .curves import (
    accuracy_against,
    accuracy_bars,
    combine_histories,
    curves_summary,
    learning_curves,
    overlay_curves,
    train_test_gap,
    transfer_map,
    transfer_points,
)
from .notebook import notebook_renderers
from .pictures import (
    confusion_matrix,
    embedding_scatter,
    first_layer_filters,
    freeze_diagram,
    image_grid,
    misclassified_grid,
    per_class_accuracy,
    prediction_bars,
    weight_change,
)
from .style import ARM_COLOURS, AXIS_TITLES
from .summary import described, summary

__all__ = [
    "ARM_COLOURS",
    "AXIS_TITLES",
    "accuracy_against",
    "accuracy_bars",
    "backbone_choice",
    "combine_histories",
    "confusion_matrix",
    "curves_summary",
    "described",
    "embedding_scatter",
    "first_layer_filters",
    "freeze_diagram",
    "image_grid",
    "learning_curves",
    "misclassified_grid",
    "multitask_bars",
    "notebook_renderers",
    "overlay_curves",
    "per_class_accuracy",
    "prediction_bars",
    "predictions_histogram",
    "summary",
    "train_test_gap",
    "transfer_map",
    "transfer_points",
    "weight_change",
]

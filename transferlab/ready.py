"""Before a lesson runs: is what it needs here? If not, one line that says what and how to get it.

    tl.check_ready(datasets=["fashion_mnist"], backbones=["efficientnet_lite0"])   # a lesson's first cell

What can be fetched is fetched first (torchvision downloads Fashion-MNIST when online, once, into
the data folder). What still cannot be had raises `Missing`, which Jupyter shows as one line
(IPython's `_render_traceback_`), not as a traceback ten frames deep into the engine.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import TransferlabError, Unavailable

__all__ = ["Missing", "check_ready"]


class Missing(Unavailable):
    """What a lesson needs and this machine cannot give it; the message says how to get each."""

    def _render_traceback_(self) -> list[str]:  # what IPython prints in place of the traceback
        return [f"Missing: {self}"]


def check_ready(datasets: Iterable[str] = (), backbones: Iterable[str] = ()) -> None:
    """Fetch what is missing and can be fetched; raise `Missing` naming what still is."""
    from ._paths import data_dir
    from .data.registry import dataset_status, load_dataset
    from .models.registry import backbone_status, create_backbone

    missing = []
    for name in datasets:
        if not dataset_status(name)[0]:
            try:
                load_dataset(name)  # a download, where the set has one and the network is there
            except (TransferlabError, OSError):
                missing.append(f"the dataset {name} ({dataset_status(name)[1]})")
    for name in backbones:
        if not backbone_status(name)[0]:
            try:
                create_backbone(name, 10)
            except (TransferlabError, OSError):
                missing.append(f"the weights of {name} ({backbone_status(name)[1]})")
    if missing:
        raise Missing(
            f"this lesson needs {'; and '.join(missing)}. Files you have elsewhere can be put in a folder "
            f"named by $TRANSFERLAB_DATA (now {data_dir()}); then run this cell again."
        )

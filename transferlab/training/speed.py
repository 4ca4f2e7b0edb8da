"""How long a comparison will take on this device, from what this device has measured.

Every finished `compare` adds each arm's training seconds and steps, and the rest of its time
(loading the data and the models, the final test), to a small book in the data folder
(`speed.json`), under the device that ran it. An estimate looks up the same arm with the same
settings, else the nearest ones measured here (another dataset size, another freeze depth), and
scales by the steps. Before the first measurement on a device there is no estimate (None): never a
figure from another machine.

    >>> estimate = estimate_seconds(config, ("finetune", "scratch"))
    >>> str(estimate)      # 'about 25 s on this device (from 6 runs measured here)'
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._paths import atomic_path, data_dir
from .config import ARMS, DEFAULT_STEPS, Arm, ExperimentConfig

__all__ = ["Estimate", "estimate_seconds", "record_speed"]

KEEP = 500  # measurements kept per kind, newest last


@dataclass(frozen=True)
class Estimate:
    seconds: float
    measured: int  # how many measurements it comes from

    def __str__(self) -> str:
        return f"about {self.seconds:.0f} s on this device (from {self.measured} run(s) measured here)"


def book_path() -> Path:
    return data_dir() / "speed.json"


def _read() -> dict:
    try:
        return json.loads(book_path().read_text())
    except (OSError, ValueError):
        return {"arms": [], "overheads": []}


def _arm(config: ExperimentConfig, arm: Arm, device: str) -> dict:
    """What decides an arm's cost per step here (the dataset size and depth are matched loosely)."""
    depth = config.freeze_depth if arm.uses_depth else 0
    return {"device": device, "backbone": config.backbone, "arm": arm.name, "size": config.size,
            "batch": config.batch_size, "depth": depth, "per_class": config.per_class or 0}  # fmt: skip


def record_speed(result, elapsed: float, device: str) -> None:
    """Add a finished comparison's measurements to the book (a stopped one measures nothing)."""
    if result.stopped:
        return
    rows = result.table.set_index("arm")  # any arm, the lessons' own included: each is its run's `Arm`
    arms = [
        _arm(result.config, result.runs[name].arm, device)
        | {"steps": int(row.steps) if row.steps == row.steps else 0, "seconds": float(row.seconds)}  # NaN: no steps
        for name, row in rows.iterrows()
    ]
    overhead = {"device": device, "backbone": result.config.backbone, "dataset": result.config.dataset,
                "seconds": max(0.0, elapsed - float(rows.seconds.sum()))}  # fmt: skip
    book = _read()  # two workers finishing at once may each miss the other's lines: a measurement, not a record
    book["arms"] = (book["arms"] + arms)[-KEEP:]
    book["overheads"] = (book["overheads"] + [overhead])[-KEEP:]
    book_path().parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(book_path()) as tmp:
        tmp.write_text(json.dumps(book))


def _arm_seconds(wanted: dict, steps: int, measured: list[dict]) -> tuple[float, int] | None:
    """The arm's seconds for `steps`, from the closest measurements of it on this device."""
    same = [m for m in measured if all(m[k] == wanted[k] for k in ("device", "backbone", "arm", "size", "batch"))]
    if not same:
        return None

    # Nearest depth first (it decides what trains), then nearest dataset size.
    def distance(m):
        return abs(m["depth"] - wanted["depth"]), abs(m["per_class"] - wanted["per_class"])

    best = min(map(distance, same))
    near = [m for m in same if distance(m) == best]
    if any(m["steps"] for m in near) and steps:
        rate = statistics.median(m["seconds"] / m["steps"] for m in near if m["steps"])
        return rate * steps, len(near)
    return statistics.median(m["seconds"] for m in near), len(near)  # a baseline fitted in one go


def estimate_seconds(
    config: ExperimentConfig, arms: Sequence[str], device: str, steps: int | None = None, separately: bool = False
) -> Estimate | None:
    """Seconds `compare(config, arms)` will take on `device` (as `device_name` says it), or None
    before this device has measured every one of the arms. `steps`: the budget in optimiser steps
    (from `plan`); `separately`: each arm is a run of its own (the dashboard's queue), so each pays
    the loading and final test."""
    book = _read()
    steps = steps or config.steps or (0 if config.epochs else DEFAULT_STEPS)
    parts = [_arm_seconds(_arm(config, ARMS[arm], device), steps, book["arms"]) for arm in arms]
    if any(p is None for p in parts):
        return None
    # Loading the data and building the networks: from the runs most like this one (this backbone on
    # this dataset, else this backbone, else this dataset), on this device.
    here = [o for o in book["overheads"] if o["device"] == device]
    backbone = [o for o in here if o["backbone"] == config.backbone]
    dataset = [o for o in here if o["dataset"] == config.dataset]
    alike = [o for o in backbone if o["dataset"] == config.dataset] or backbone or dataset
    overheads = [o["seconds"] for o in alike]
    overhead = statistics.median(overheads) if overheads else 0.0
    seconds = sum(s for s, _ in parts) + overhead * (len(arms) if separately else 1)
    return Estimate(seconds, sum(n for _, n in parts))

"""The transfer map: a sweep over freeze depth x images per class x seed that resumes, and runs in
this process, on a pool of local worker processes, or on a Ray cluster, with the same table.

    >>> grid = Grid(freeze_depth=range(10), per_class=(1, 5, 10, 50, 100))
    >>> table = run_sweep(grid)                          # one row per cell and arm, with the gap
    >>> plots.transfer_map(table)
    python -m transferlab sweep --depths 0-9 --sizes 1,5,10,50,100 [--backend processes|ray]

Each unit of work is one arm at one setting, and it is a comparison in the run store under its own
key, saved as soon as it finishes. Running the same grid again (after a kill, say) takes every
finished unit from the store and trains only the rest. An arm whose depth does not come from the
config (`scratch`, `probe`) is the same run at every freeze depth, so it is trained once per size
and seed. In one process, the units share the frozen-prefix and test-feature cache
(`transferlab.features`): the test split's features at depth k are computed once for every size
and seed.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from .config import ARMS, ExperimentConfig
from .errors import ConfigError
from .outcome import Outcome, comparison_key
from .stats import paired_difference
from .store import RunStore

__all__ = ["BACKENDS", "Grid", "Unit", "map_table", "run_sweep"]

BACKENDS = ("inprocess", "processes", "ray")


@dataclass(frozen=True)
class Unit:
    """One arm at one setting: a comparison of its own in the run store."""

    config: ExperimentConfig
    arm: str

    @property
    def key(self) -> str:
        return comparison_key(self.config, (self.arm,))


@dataclass(frozen=True)
class Grid:
    """The cells of a map: every freeze depth x images per class x seed (x backbone x learning rate)."""

    base: ExperimentConfig = field(default_factory=ExperimentConfig)
    freeze_depth: Sequence[int] = (4,)
    per_class: Sequence[int | None] = (10,)
    seed: Sequence[int] = (0,)
    backbone: Sequence[str] = ()  # empty: the base config's
    lr: Sequence[float] = ()  # empty: the base config's
    arms: Sequence[str] = ("finetune", "scratch")

    def cells(self) -> list[ExperimentConfig]:
        """Every setting of the grid, as a config."""
        axes = {
            "backbone": tuple(self.backbone) or (self.base.backbone,),
            "lr": tuple(self.lr) or (self.base.lr,),
            "per_class": tuple(self.per_class),
            "seed": tuple(self.seed),
            "freeze_depth": tuple(self.freeze_depth),
        }
        if unknown := [a for a in self.arms if a not in ARMS]:
            raise ConfigError(f"unknown arm(s) {unknown}: a sweep runs {', '.join(ARMS)}")
        cells = [replace(self.base, **dict(zip(axes, values))) for values in itertools.product(*axes.values())]
        for cell in cells:
            cell.validate()
        return cells

    def unit(self, cell: ExperimentConfig, arm: str) -> Unit:
        """The unit that gives `arm` at `cell`: one that ignores the depth is the same at every depth."""
        return Unit(cell if ARMS[arm].freeze == "config" else replace(cell, freeze_depth=0), arm)

    def units(self) -> list[Unit]:
        """The distinct units, deepest freeze first (the cheapest cells fill the map first)."""
        units = dict.fromkeys(self.unit(c, a) for c in self.cells() for a in self.arms)
        return sorted(units, key=lambda u: (-u.config.freeze_depth, u.arm != "scratch"))


def run_sweep(
    grid: Grid,
    store: RunStore | None = None,
    backend: str = "inprocess",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_unit: Callable[[Unit, Outcome, bool], None] | None = None,
) -> pd.DataFrame:
    """Train every unit of `grid` not already in `store`, saving each as it finishes; one tidy table.

    Args:
        grid: the cells and arms.
        store: where finished units go and are found again (default: the run store, `RunStore()`).
        backend: "inprocess" (default), "processes" (a pool of `workers` local processes) or "ray"
            (a Ray cluster at `address`, or a local Ray instance when None).
        workers: processes for "processes" (default: one per two cores); parallel tasks for "ray".
        progress: a progress bar (tqdm) over the units.
        on_unit: called as `on_unit(unit, outcome, from_store)` for every unit, stored ones first.

    Returns:
        One row per cell and arm: backbone, lr, per_class, seed, freeze_depth, arm, test_accuracy,
        val_accuracy, seconds, steps, comparison (its id in the store), from_store; and gap, the
        `finetune` minus `scratch` test accuracy of the cell with its 95% interval gap_low to
        gap_high (NaN without both arms).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    store = store if store is not None else RunStore()
    units = grid.units()
    found: dict[str, tuple[int, bool]] = {}
    todo = []
    for unit in units:
        if (stored := store.find(unit.key)) is not None:
            found[unit.key] = (stored, True)
            if on_unit:
                on_unit(unit, store.load(stored), True)
        else:
            todo.append(unit)
    bar = _bar(len(units), len(found), backend) if progress else None
    for unit, outcome in _execute(todo, backend, workers, address):
        found[unit.key] = (store.save(outcome), False)
        if bar is not None:
            bar.set_postfix_str(f"{unit.arm} k={unit.config.freeze_depth} n={unit.config.per_class}")
            bar.update(1)
        if on_unit:
            on_unit(unit, outcome, False)
    if bar is not None:
        bar.close()
    return _table(grid, store, found)


def _bar(total: int, done: int, backend: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"transfer map ({backend})", unit="run")


def train_unit(unit: Unit) -> Outcome:
    """Train one unit and return its plain-data outcome (what a worker process or Ray task sends back)."""
    from .comparison import compare

    started = time.perf_counter()
    result = compare(unit.config, [unit.arm])
    return Outcome.of(result, elapsed=time.perf_counter() - started)


def _execute(
    todo: list[Unit], backend: str, workers: int | None, address: str | None
) -> Iterator[tuple[Unit, Outcome]]:
    if not todo:
        return
    if backend == "inprocess":
        for unit in todo:
            yield unit, train_unit(unit)
    elif backend == "processes":
        yield from _in_processes(todo, workers or max(1, (os.cpu_count() or 2) // 2))
    else:
        yield from _on_ray(todo, workers, address)


def _init_process(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _in_processes(todo: list[Unit], workers: int) -> Iterator[tuple[Unit, Outcome]]:
    """A pool of fresh interpreters (spawned: no forked torch state), each with its share of the cores."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_process, initargs=(threads,)) as pool:
        futures = {pool.submit(train_unit, unit): unit for unit in todo}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def _on_ray(todo: list[Unit], workers: int | None, address: str | None) -> Iterator[tuple[Unit, Outcome]]:
    """Ray tasks, one per unit, on the cluster at `address` (or a local instance), gathered as they finish."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'ray==2.60.0'") from None
    from ._paths import PROJECT_ROOT

    if not ray.is_initialized():
        # Tasks import transferlab: from this checkout on a local instance; a cluster's machines need it installed.
        env = {"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}} if address is None else None
        ray.init(address=address, num_cpus=workers if address is None else None, runtime_env=env)
    task = ray.remote(num_cpus=1)(train_unit)
    pending = {task.remote(unit): unit for unit in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(done[0])
            yield unit, ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)


def _table(grid: Grid, store: RunStore, found: dict[str, tuple[int, bool]]) -> pd.DataFrame:
    loaded = {stored: store.load(stored) for stored, _ in set(found.values())}
    return map_table(grid, {key: (loaded[stored], stored, from_store) for key, (stored, from_store) in found.items()})


def map_table(grid: Grid, finished: Mapping[str, tuple[Outcome, int | None, bool]]) -> pd.DataFrame:
    """The sweep's tidy table from the units finished so far: {unit key: (its outcome, its id in the
    store, whether it came from the store)}. A cell with a unit still missing has NaN there.

    `gap` is the cell's finetune minus scratch test accuracy, and `gap_low`, `gap_high` its 95%
    interval, paired over the test images the two units share (`stats.paired_difference`)."""
    rows = []
    for cell in grid.cells():
        cell_rows, outcomes = [], {}
        for arm in grid.arms:
            outcome, stored, from_store = finished.get(grid.unit(cell, arm).key, (None, None, False))
            r = outcome.table.set_index("arm").loc[arm] if outcome is not None else pd.Series(dtype=float)
            if outcome is not None:
                outcomes[arm] = outcome
            cell_rows.append(
                {
                    "backbone": cell.backbone,
                    "lr": cell.lr,
                    "per_class": cell.per_class,
                    "seed": cell.seed,
                    "freeze_depth": cell.freeze_depth,
                    "arm": arm,
                    "test_accuracy": float(r.get("test_accuracy", float("nan"))),
                    "val_accuracy": float(r.get("val_accuracy", float("nan"))),
                    "seconds": float(r.get("seconds", float("nan"))),
                    "steps": r.get("steps"),
                    "comparison": stored,
                    "from_store": from_store,
                }
            )
        gap = {"gap": float("nan"), "gap_low": float("nan"), "gap_high": float("nan")}
        if {"finetune", "scratch"} <= set(outcomes):
            ft, sc = outcomes["finetune"], outcomes["scratch"]
            d = paired_difference(ft.correct("finetune"), sc.correct("scratch"), "finetune", "scratch")
            gap = {"gap": d.estimate, "gap_low": d.low, "gap_high": d.high}
        rows += [{**r, **gap} for r in cell_rows]
    return pd.DataFrame(rows)

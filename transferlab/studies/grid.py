"""The grid: comparisons over freeze depth x images per class x seed (or any config fields), as
one tidy table. The lessons' sweeps, the transfer map, the dashboard's map view and the `sweep`
command all run it.

    >>> table = sweep(ExperimentConfig(), ["finetune", "scratch"], per_class=[1, 10], freeze_depth=[4, 8])
    >>> grid = Grid(freeze_depth=range(10), per_class=(1, 5, 10, 50, 100))
    >>> table = run_sweep(grid, RunStore())             # resumes from the store; processes or Ray
    >>> plots.transfer_map(table)                       # the fine-tune-minus-scratch gap, depth x n
    python -m transferlab sweep --depths 0-9 --sizes 1,5,10,50,100 [--backend processes|ray]

Each unit of work is one arm at one setting: `compare(config, [arm])`, which gives the same
numbers as that arm in a comparison of several (each run owns its random state). With a store,
each unit is a comparison in it under its own key, saved as soon as it finishes, and running the
same grid again (after a kill, say) trains only the units not there yet. An arm whose depth does
not come from the config (`scratch`, `probe`, `pixels`) is the same run at every freeze depth, so it
is trained once per size and seed. In one process, the units share the frozen-prefix and
test-feature cache (`transferlab.training.features`): the test split's features at depth k are
computed once for every size and seed.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import pandas as pd

from ..errors import ConfigError
from ..stats import holm, paired_difference
from ..training.callbacks import Callback
from ..training.config import ARMS, ExperimentConfig, unit_config
from ..training.outcome import Outcome, comparison_key
from ..training.store import RunStore

__all__ = ["BACKENDS", "Grid", "MemoryStore", "Unit", "map_table", "run_sweep", "sweep"]

BACKENDS = ("inprocess", "processes", "ray")
NAMED_AXES = ("backbone", "lr", "per_class", "freeze_depth")  # the map's axes, besides the seed


@dataclass(frozen=True)
class Unit:
    """One arm at one setting: a comparison of its own (and in a store, under its own key)."""

    config: ExperimentConfig
    arm: str

    @property
    def key(self) -> str:
        return comparison_key(self.config, (self.arm,))


@dataclass(frozen=True)
class Grid:
    """The cells of a map: every freeze depth x images per class x seed (x backbone x learning rate
    x any other config fields in `more`), and the arms trained at each."""

    base: ExperimentConfig = field(default_factory=ExperimentConfig)
    freeze_depth: Sequence[int] = (4,)
    per_class: Sequence[int | None] = (10,)
    seed: Sequence[int] = (0,)
    backbone: Sequence[str] = ()  # empty: the base config's
    lr: Sequence[float] = ()  # empty: the base config's
    arms: Sequence[str] = ("finetune", "scratch")
    more: tuple[tuple[str, tuple], ...] = ()  # (config field, values), for fields without an axis above

    @classmethod
    def of(cls, base: ExperimentConfig, arms: Sequence[str], seeds: Sequence[int], **axes: Sequence) -> Grid:
        """A grid from config fields and their values, e.g. `per_class=[1, 10], steps=[60, 600]`; a
        field not given keeps the base config's value."""
        names = {f.name for f in fields(ExperimentConfig)}
        if unknown := sorted(set(axes) - names) or ["seed"] * ("seed" in axes):
            raise ConfigError(f"grid fields must be ExperimentConfig fields other than seed (use seeds=): {unknown}")
        named = {a: tuple(axes.get(a, ())) for a in NAMED_AXES}
        named["freeze_depth"] = named["freeze_depth"] or (base.freeze_depth,)
        named["per_class"] = named["per_class"] or (base.per_class,)
        more = tuple((a, tuple(v)) for a, v in axes.items() if a not in NAMED_AXES)
        return cls(base=base, arms=tuple(arms), seed=tuple(seeds), more=more, **named)

    def axes(self) -> dict[str, tuple]:
        """Each varied config field and its values, the seed included."""
        return {
            "backbone": tuple(self.backbone) or (self.base.backbone,),
            "lr": tuple(self.lr) or (self.base.lr,),
            "per_class": tuple(self.per_class),
            **dict(self.more),
            "seed": tuple(self.seed),
            "freeze_depth": tuple(self.freeze_depth),
        }

    def cells(self) -> list[ExperimentConfig]:
        """Every setting of the grid, as a config."""
        if unknown := [a for a in self.arms if a not in ARMS]:
            raise ConfigError(f"unknown arm(s) {unknown}: a grid runs {', '.join(ARMS)}")
        axes = self.axes()
        cells = [replace(self.base, **dict(zip(axes, values))) for values in itertools.product(*axes.values())]
        for cell in cells:
            cell.validate()
        return cells

    def unit(self, cell: ExperimentConfig, arm: str) -> Unit:
        """The unit that gives `arm` at `cell`: one that ignores the depth is the same at every depth."""
        return Unit(unit_config(cell, arm), arm)

    def units(self) -> list[Unit]:
        """The distinct units, deepest freeze first (the cheapest cells fill the map first)."""
        units = dict.fromkeys(self.unit(c, a) for c in self.cells() for a in self.arms)
        return sorted(units, key=lambda u: (-u.config.freeze_depth, u.arm != "scratch"))


class MemoryStore:
    """A run store that keeps its outcomes in this process only: a sweep that need not resume."""

    def __init__(self):
        self._outcomes: list[Outcome] = []

    def find(self, key: str) -> int | None:
        return next((i for i, o in enumerate(self._outcomes) if o.key == key), None)

    def save(self, outcome: Outcome) -> int:
        self._outcomes.append(outcome)
        return len(self._outcomes) - 1

    def load(self, comparison_id: int) -> Outcome:
        return self._outcomes[comparison_id]


def sweep(
    config: ExperimentConfig,
    arms: Sequence[str] = ("finetune", "scratch"),
    seeds: Sequence[int] = (0,),
    callbacks: Sequence[Callback] = (),
    **axes: Sequence,
) -> pd.DataFrame:
    """`run_sweep` over `config` with some fields varied, in this process, nothing stored.

    Args:
        config: the base experiment; each grid point replaces some of its fields.
        arms: names from `ARMS`.
        seeds: one run per seed at every point.
        callbacks: passed to every run (`on_run_end` sees each arm's run).
        **axes: config field -> values, e.g. `per_class=[1, 10, 100], freeze_depth=[0, 4]`.

    Returns:
        `run_sweep`'s table.
    """
    return run_sweep(Grid.of(config, arms, seeds, **axes), progress=False, callbacks=callbacks)


def run_sweep(
    grid: Grid,
    store: RunStore | MemoryStore | None = None,
    backend: str = "inprocess",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_unit: Callable[[Unit, Outcome, bool], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> pd.DataFrame:
    """Train every unit of `grid` not already in `store`, saving each as it finishes; one tidy table.

    Args:
        grid: the cells and arms.
        store: where finished units go and are found again (a `RunStore`); None keeps them in
            this process only.
        backend: "inprocess" (default), "processes" (a pool of `workers` local processes) or "ray"
            (a Ray cluster at `address`, or a local Ray instance when None).
        workers: processes for "processes" (default: one per two cores); parallel tasks for "ray".
        progress: a progress bar (tqdm) over the units.
        on_unit: called as `on_unit(unit, outcome, from_store)` for every unit, stored ones first.
        callbacks: passed to every run; in process only.

    Returns:
        `map_table`'s table: one row per cell and arm.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if callbacks and backend != "inprocess":
        raise ConfigError("callbacks run in this process: use backend='inprocess' with them")
    store = store if store is not None else MemoryStore()
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
    for unit, outcome in _execute(todo, backend, workers, address, tuple(callbacks)):
        found[unit.key] = (store.save(outcome), False)
        if bar is not None:
            bar.set_postfix_str(f"{unit.arm} k={unit.config.freeze_depth} n={unit.config.per_class}")
            bar.update(1)
        if on_unit:
            on_unit(unit, outcome, False)
    if bar is not None:
        bar.close()
    loaded = {stored: store.load(stored) for stored, _ in set(found.values())}
    stored_ids = {key: stored if isinstance(store, RunStore) else None for key, (stored, _) in found.items()}
    return map_table(grid, {key: (loaded[s], stored_ids[key], from_store) for key, (s, from_store) in found.items()})


def _bar(total: int, done: int, backend: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"transfer map ({backend})", unit="run")


def train_unit(unit: Unit, callbacks: Sequence[Callback] = ()) -> Outcome:
    """Train one unit and return its plain-data outcome (what a worker process or Ray task sends back)."""
    from ..training.comparison import compare

    started = time.perf_counter()
    result = compare(unit.config, [unit.arm], callbacks)
    return Outcome.of(result, elapsed=time.perf_counter() - started)


def _execute(
    todo: list[Unit], backend: str, workers: int | None, address: str | None, callbacks: tuple[Callback, ...]
) -> Iterator[tuple[Unit, Outcome]]:
    if not todo:
        return
    if backend == "inprocess":
        for unit in todo:
            yield unit, train_unit(unit, callbacks)
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
    from .._paths import PROJECT_ROOT

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


def map_table(grid: Grid, finished: Mapping[str, tuple[Outcome, int | None, bool]]) -> pd.DataFrame:
    """The grid's tidy table from the units finished so far: {unit key: (its outcome, its id in the
    store, whether it came from the store)}. A cell with a unit still missing has NaN there.

    One row per cell and arm: the cell's settings (backbone, lr, per_class, the other varied
    fields, seed, freeze_depth), `arm`, the arm's row of its comparison (`test_accuracy`,
    `val_accuracy`, `seconds`, `steps`, ...; `depth` is the arm's own freeze depth),
    `train_accuracy` (its last training measurement: with test_accuracy, the overfitting gap),
    `comparison` (its id in a `RunStore`), `from_store`; and `gap`, the cell's finetune minus
    scratch test accuracy, with `gap_low`, `gap_high` its interval, paired over the test images
    the two units share (`stats.paired_difference`); the map shows its cells together, so the
    finished cells' intervals are adjusted together (`stats.holm`; `gap_confidence` is each level).
    """
    axes = list(grid.axes())
    rows, gaps = [], {}
    for cell in grid.cells():
        cell_rows, outcomes = [], {}
        for arm in grid.arms:
            outcome, stored, from_store = finished.get(grid.unit(cell, arm).key, (None, None, False))
            row = {"test_accuracy": float("nan"), "val_accuracy": float("nan"), "seconds": float("nan")}
            if outcome is not None:
                outcomes[arm] = outcome
                row = outcome.table.set_index("arm").loc[arm].to_dict()
                row["depth"] = row.pop("freeze_depth")
                history = outcome.history
                train = history[(history.split == "train") & (history.arm == arm)]
                row["train_accuracy"] = float(train.accuracy.iloc[-1]) if len(train) else float("nan")
            settings = {axis: getattr(cell, axis) for axis in axes}
            cell_rows.append(
                {**settings, "arm": arm, **row, **settings, "comparison": stored, "from_store": from_store}
            )
        if {"finetune", "scratch"} <= set(outcomes):
            ft, sc = outcomes["finetune"], outcomes["scratch"]
            gaps[len(rows)] = paired_difference(ft.correct("finetune"), sc.correct("scratch"), "finetune", "scratch")
        rows.append(cell_rows)
    adjusted = dict(zip(gaps, holm(list(gaps.values()))))
    nan = float("nan")
    return pd.DataFrame(
        [
            {**r, "gap": d.estimate, "gap_low": d.low, "gap_high": d.high, "gap_confidence": d.confidence}
            if (d := adjusted.get(i))
            else {**r, "gap": nan, "gap_low": nan, "gap_high": nan, "gap_confidence": nan}
            for i, cell_rows in enumerate(rows)
            for r in cell_rows
        ]
    )

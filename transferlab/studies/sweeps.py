"""Sweeps: `compare()` over a grid of config fields and seeds, as one tidy table.

    >>> table = sweep(ExperimentConfig(), ["finetune", "scratch"], per_class=[1, 10], freeze_depth=[4, 8])
    >>> plots.transfer_map(table)            # the fine-tune-minus-scratch gap, depth x n
    >>> plots.accuracy_against(table, x="per_class", log_x=True)

An arm whose depth does not come from the config (`scratch`, `probe`, fixed depths) gives the
same run for every `freeze_depth` in the grid, so it is trained once and its row reused.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import fields, replace

import pandas as pd

from ..errors import ConfigError
from ..training.callbacks import Callback
from ..training.comparison import compare
from ..training.config import ARMS, Arm, ExperimentConfig

__all__ = ["layer_transfer", "sweep"]


def sweep(
    config: ExperimentConfig,
    arms: Sequence[str | Arm] = ("finetune", "scratch"),
    seeds: Sequence[int] = (0,),
    callbacks: Sequence[Callback] = (),
    on_point: Callable[[dict], None] | None = None,
    **grid: Sequence,
) -> pd.DataFrame:
    """Run `compare(config, arms)` at every point of `grid` x `seeds`.

    Args:
        config: the base experiment; each grid point replaces some of its fields.
        arms: names from `ARMS` or `Arm`s.
        seeds: one run per seed at every point.
        callbacks: passed to every `compare`.
        on_point: called with each grid point (and seed) before it runs, e.g. to print progress.
        **grid: config field -> values, e.g. `per_class=[1, 10, 100], freeze_depth=[0, 4]`.

    Returns:
        One row per (grid point, seed, arm): the grid fields (`freeze_depth` is the config's,
        `depth` the arm's own), `arm`, `test_accuracy`, `train_accuracy` (last epoch), `seconds`,
        ... and `gap`, the `finetune` minus `scratch` accuracy at that point and seed (NaN
        without both arms).
    """
    names = {f.name for f in fields(ExperimentConfig)}
    unknown = sorted(set(grid) - names)
    if unknown or "seed" in grid:
        raise ConfigError(f"grid fields must be ExperimentConfig fields other than seed (use seeds=): {unknown}")
    arms = [ARMS[a] if isinstance(a, str) else a for a in arms]
    reused: dict[tuple, dict] = {}
    rows = []
    for values in itertools.product(*grid.values()):
        for seed in seeds:
            point = dict(zip(grid, values), seed=seed)
            cfg = replace(config, **point)
            if on_point is not None:
                on_point(point)
            keys = {a.name: _reuse_key(cfg, a) for a in arms}
            todo = [a for a in arms if keys[a.name] not in reused]
            if todo:
                result = compare(cfg, todo, callbacks)
                h = result.history
                last_train = h[h.split == "train"].groupby("arm").accuracy.last()
                for row in result.table.to_dict("records"):
                    # The final epoch's training accuracy: with test_accuracy, the overfitting gap.
                    reused[keys[row["arm"]]] = {**row, "train_accuracy": float(last_train[row["arm"]])}
            point_rows = []
            for a in arms:
                row = dict(reused[keys[a.name]])
                row["depth"] = row.pop("freeze_depth")
                point_rows.append({**point, "freeze_depth": cfg.freeze_depth, **row})
            acc = {r["arm"]: r["test_accuracy"] for r in point_rows}
            gap = acc["finetune"] - acc["scratch"] if {"finetune", "scratch"} <= set(acc) else float("nan")
            rows += [{**r, "gap": gap} for r in point_rows]
    return pd.DataFrame(rows)


def _reuse_key(config: ExperimentConfig, arm: Arm) -> tuple:
    """Runs with equal keys train identically: an arm that ignores the config's depth ignores it."""
    if arm.freeze != "config":
        config = replace(config, freeze_depth=0)
    init = arm.init if isinstance(arm.init, str) else id(arm.init)
    return (config, arm.name, init, arm.freeze, arm.lr_mult)


def layer_transfer(
    config: ExperimentConfig,
    sources: dict[str, dict],
    depths: Sequence[int],
    seeds: Sequence[int] = (0,),
    fine_tune: Sequence[str] = (),
) -> pd.DataFrame:
    """Yosinski et al. (2014) at small scale: copy the first k blocks of each source, retrain the rest.

    For every depth k, seed and source `X` (a blocks state dict, e.g. "A": weights pretrained on
    task A), the arm `XnB` starts from `transplant(X, k)` with blocks 1..k frozen and blocks
    k+1..n re-initialised; for sources named in `fine_tune`, `XnB+` trains everything from the
    same start. A `scratch` run per seed is the baseline (k = 0).

    Returns:
        One row per run: `arm` (e.g. "AnB+"), `freeze_depth` (k), `seed`, `test_accuracy`, ...
    """
    from .analysis import transplant

    rows = []
    for seed in seeds:
        cfg = replace(config, seed=seed)
        rows += [{**r, "arm": "scratch"} for r in compare(cfg, ["scratch"]).table.to_dict("records")]
        for k in depths:
            arms = []
            for name, state in sources.items():
                start = transplant(state, k, config.backbone, seed)
                arms.append(Arm(f"{name}nB", init=start, freeze=k))
                if name in fine_tune:
                    arms.append(Arm(f"{name}nB+", init=start, freeze="none"))
            table = compare(replace(cfg, freeze_depth=k), arms).table
            rows += [{**r, "freeze_depth": k} for r in table.to_dict("records")]
    return pd.DataFrame(rows)

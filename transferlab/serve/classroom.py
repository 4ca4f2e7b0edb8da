"""A class at size, simulated: hundreds of sessions pressing Run, on 1, 2, 8 ... workers.

    python -m transferlab.bench --case class                        # 300 sessions; 1, 2 and 8 workers
    python -m transferlab.bench --case class --gpu-factor 12        # the arms 12x faster (a GPU's worker)

It drives the queue's own policy on a virtual clock: the sessions' lines and turns are
`transferlab.serve.turns.Turns`, an arm is shared by the key the queue gives it (`unit_config`,
`comparison_key`: queued, running or finished, it trains once), and each arm takes the seconds it
takes on this machine, measured here first with the real engine (or given with `--costs`). What it
does not run is the worker processes themselves: starting a worker, sending records and storing
an outcome cost a fraction of a second per arm, left out.

Settings are drawn as a class draws them: half the sessions on the defaults (k = 4, 10 images per
class), the others on any depth 0-9, 5 to 50 images per class, some on another seed or more
steps (an arm's cost taken as proportional to its steps). A few sessions (`--maps`) build a
transfer map of 55 units (10 depths x 5 sizes of finetune, 5 of scratch) before the class comes.

It prints, for each number of workers, the seconds from each press of Run to its verdict (median,
95th percentile, worst), the arms trained against the arms asked for, and the share of the
workers' time that went to the map builders while Runs waited (a shared arm split between its
sessions).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import time
from dataclasses import dataclass, field, replace

from ..training.config import ExperimentConfig, unit_config
from ..training.outcome import comparison_key
from .turns import Turns

__all__ = ["measure_costs", "simulate"]

DEPTHS = range(10)  # efficientnet_lite0's blocks
MAP_SIZES = (1, 5, 10, 50, 100)


@dataclass(eq=False)
class SimulatedArm:
    """One unit of work in the simulation: an arm at a setting, wanted by `owners`."""

    key: str
    arm: str
    seconds: float
    owners: set = field(default_factory=set)
    batches: dict = field(default_factory=dict)  # owner -> the comparison it is an arm of, for them
    done: bool = False

    def batch_of(self, owner: str) -> str:
        return self.batches.get(owner, self.key)


def measure_costs(config: ExperimentConfig, depths=(0, 5, 9)) -> dict:
    """Seconds each arm takes on this machine at `config`'s budget: finetune at a few depths (the
    frozen prefix makes deeper ones cheaper), scratch once; `cost` interpolates between them."""
    from ..training.comparison import compare

    costs = {"finetune": {}, "scratch": None}
    for k in depths:
        started = time.perf_counter()
        compare(replace(config, freeze_depth=k), ["finetune"])
        costs["finetune"][k] = time.perf_counter() - started
    started = time.perf_counter()
    compare(config, ["scratch"])
    costs["scratch"] = time.perf_counter() - started
    return costs


def cost(costs: dict, arm: str, k: int) -> float:
    if arm == "scratch":
        return costs["scratch"]
    measured = sorted((int(d), s) for d, s in costs["finetune"].items())
    for (d0, s0), (d1, s1) in zip(measured, measured[1:]):
        if d0 <= k <= d1:
            return s0 + (s1 - s0) * (k - d0) / max(1, d1 - d0)
    return measured[0][1] if k < measured[0][0] else measured[-1][1]


def class_settings(sessions: int, rng: random.Random, base: ExperimentConfig) -> list[ExperimentConfig]:
    """What a class asks for: half on the defaults; the rest on any depth and a few sizes, one in
    four of those on another seed (checking the noise), one in five on two or four times the steps."""
    configs = []
    for _ in range(sessions):
        if rng.random() < 0.5:
            configs.append(base)
            continue
        config = replace(base, freeze_depth=rng.choice(DEPTHS), per_class=rng.choice((5, 10, 10, 50)))
        if rng.random() < 0.25:
            config = replace(config, seed=rng.randrange(1, 5))
        if rng.random() < 0.2:
            config = replace(config, steps=base.steps * rng.choice((2, 4)))
        configs.append(config)
    return configs


def simulate(
    sessions: int, workers: int, costs: dict, maps: int = 5, press_within: float = 60.0, seed: int = 0
) -> dict:
    """One class on `workers` workers; the figures `main` prints."""
    rng = random.Random(seed)
    base = ExperimentConfig(per_class=10, freeze_depth=4, steps=60)
    configs = class_settings(sessions, rng, base)
    pressed = sorted(rng.uniform(0, press_within) for _ in range(sessions))
    turns, units, wanted, asked = Turns(), {}, {}, 0

    def want(owner: str, config: ExperimentConfig, arm: str, batch: str) -> SimulatedArm:
        unit = unit_config(config, arm)
        key = comparison_key(unit, (arm,), dataset_version="class")
        if key not in units:
            units[key] = SimulatedArm(key, arm, cost(costs, arm, unit.freeze_depth) * unit.steps / base.steps)
            turns.add(owner, units[key])
        units[key].owners.add(owner)
        units[key].batches[owner] = batch
        turns.changed()
        return units[key]

    # Arrivals, in time order: the map builders press at the start, the class within a minute.
    events = [(0.0, "map", f"map{i}", None) for i in range(maps)]
    events += [(t, "run", f"s{i}", c) for i, (t, c) in enumerate(zip(pressed, configs))]
    events.sort(key=lambda e: e[0])
    free, clock, busy = workers, 0.0, []  # busy: (ends, n, unit)
    verdicts, map_seconds, run_seconds, n = {}, 0.0, 0.0, 0
    while events or busy or (turns and free):
        # Start what can start, at the current clock.
        while free and turns:
            unit = turns.pop()
            free -= 1
            n += 1
            heapq.heappush(busy, (clock + unit.seconds, n, unit))
            share = unit.seconds / len(unit.owners)
            maps_part = sum(o.startswith("map") for o in unit.owners) * share
            if len(verdicts) < sessions:  # while Runs still wait
                map_seconds += maps_part
                run_seconds += unit.seconds - maps_part
        next_arrival = events[0][0] if events else float("inf")
        next_end = busy[0][0] if busy else float("inf")
        if next_arrival <= next_end:
            clock, kind, owner, config = events.pop(0)
            if kind == "run":
                wanted[owner] = (clock, [want(owner, config, arm, owner) for arm in ("finetune", "scratch")])
                asked += 2
                if all(u.done for u in wanted[owner][1]):  # both arms trained for someone before
                    verdicts[owner] = 0.0
            else:
                grid = [(k, size, "finetune") for k in DEPTHS for size in MAP_SIZES]
                grid += [(0, size, "scratch") for size in MAP_SIZES]
                for i, (k, size, arm) in enumerate(grid):
                    want(owner, replace(base, freeze_depth=k, per_class=size), arm, f"{owner}/{i}")
                asked += len(grid)
            continue
        clock, _, unit = heapq.heappop(busy)
        unit.done, free = True, free + 1
        for owner in unit.owners:
            if owner in wanted and owner not in verdicts and all(u.done for u in wanted[owner][1]):
                verdicts[owner] = clock - wanted[owner][0]
    waits = sorted(verdicts.values())
    return {
        "sessions": sessions,
        "workers": workers,
        "map_builders": maps,
        "verdict_median_s": round(statistics.median(waits), 1),
        "verdict_p95_s": round(waits[int(0.95 * (len(waits) - 1))], 1),
        "verdict_worst_s": round(waits[-1], 1),
        "arms_trained": n,
        "arms_asked": asked,
        "map_share_while_runs_waited": round(map_seconds / max(1e-9, map_seconds + run_seconds), 3),
        "all_done_s": round(clock, 1),
    }


def main(argv: list[str] | None = None) -> int:
    prog, about = "python -m transferlab.bench --case class", __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog=prog, description=about)
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--workers", default="1,2,8", help="numbers of workers to simulate, e.g. 1,2,8")
    parser.add_argument("--maps", type=int, default=5, help="sessions that also build a 55-unit transfer map")
    parser.add_argument("--gpu-factor", type=float, default=1.0, help="divide every measured cost by this")
    parser.add_argument("--costs", help="a JSON file of costs (as printed) instead of measuring them")
    args = parser.parse_args(argv)
    if args.costs:
        with open(args.costs) as f:
            costs = json.load(f)
    else:
        print("measuring each arm's cost on this machine (the default settings, 60 steps)...", flush=True)
        costs = measure_costs(ExperimentConfig(per_class=10, steps=60))
    print(json.dumps({"costs_s": costs}))
    scaled = {
        "finetune": {k: s / args.gpu_factor for k, s in costs["finetune"].items()},
        "scratch": costs["scratch"] / args.gpu_factor,
    }
    for workers in (int(w) for w in args.workers.split(",")):
        print(json.dumps(simulate(args.sessions, workers, scaled, maps=args.maps)))
    return 0

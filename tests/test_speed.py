"""The cost before the run: estimates from what this device measured, checked against the time taken."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from transferlab import compare
from transferlab.device import device_name, pick_device
from transferlab.training.speed import book_path, estimate_seconds

ARMS = ("finetune", "scratch")


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path))


def here() -> str:
    return device_name(pick_device("auto"))


def test_no_estimate_before_this_device_measured_anything(tiny):
    assert estimate_seconds(tiny, ARMS, here()) is None


def test_an_estimate_from_one_run_is_within_a_factor_of_two_of_the_next(tiny):
    config = replace(tiny, epochs=None, steps=40)
    compare(config, ARMS)  # measures this device
    compare(replace(config, seed=1), ARMS)
    estimate = estimate_seconds(replace(config, seed=2), ARMS, here())
    started = time.perf_counter()
    compare(replace(config, seed=2), ARMS)
    took = time.perf_counter() - started
    assert estimate is not None and estimate.measured >= 4
    assert 0.5 <= estimate.seconds / took <= 2.0, (estimate.seconds, took)
    assert str(estimate).startswith("about ") and "measured here" in str(estimate)
    # Another device's measurements are not this one's.
    assert estimate_seconds(config, ARMS, "NVIDIA Imaginary GPU") is None


def write_book(arms: list[dict], overheads: list[dict]) -> None:
    book_path().parent.mkdir(parents=True, exist_ok=True)
    book_path().write_text(json.dumps({"arms": arms, "overheads": overheads}))


def test_it_scales_by_the_steps_and_takes_the_nearest_depth_measured(tiny):
    same = {"device": "D", "backbone": tiny.backbone, "size": tiny.size, "batch": tiny.batch_size, "per_class": 8}
    write_book(
        [same | {"arm": "finetune", "depth": 0, "steps": 100, "seconds": 10.0},
         same | {"arm": "finetune", "depth": 3, "steps": 100, "seconds": 2.0},
         same | {"arm": "scratch", "depth": 0, "steps": 100, "seconds": 12.0}],
        [{"device": "D", "backbone": tiny.backbone, "dataset": tiny.dataset, "seconds": 1.0}],
    )  # fmt: skip
    config = replace(tiny, epochs=None, steps=200, freeze_depth=2)  # depth 3 is the nearest measured
    assert estimate_seconds(config, ARMS, "D").seconds == pytest.approx(4.0 + 24.0 + 1.0)
    assert estimate_seconds(config, ARMS, "D", separately=True).seconds == pytest.approx(4.0 + 24.0 + 2.0)
    assert estimate_seconds(config, ("finetune", "probe"), "D") is None, "an arm never measured here: no figure"


def test_the_overhead_comes_from_the_runs_most_like_this_one(tiny):
    same = {"device": "D", "backbone": tiny.backbone, "size": tiny.size, "batch": tiny.batch_size, "per_class": 8}
    overhead = {"device": "D", "backbone": tiny.backbone, "dataset": tiny.dataset}
    config = replace(tiny, epochs=None, steps=100, freeze_depth=0)
    arms = [same | {"arm": "finetune", "depth": 0, "steps": 100, "seconds": 10.0}]
    other_backbone, other_dataset = overhead | {"backbone": "big"}, overhead | {"dataset": "other"}
    write_book(
        arms, [other_backbone | {"seconds": 50.0}, other_dataset | {"seconds": 3.0}, overhead | {"seconds": 1.0}]
    )
    assert estimate_seconds(config, ["finetune"], "D").seconds == pytest.approx(10.0 + 1.0)
    write_book(arms, [other_backbone | {"seconds": 50.0}, other_dataset | {"seconds": 3.0}])  # this backbone first
    assert estimate_seconds(config, ["finetune"], "D").seconds == pytest.approx(10.0 + 3.0)
    write_book(arms, [other_backbone | {"seconds": 50.0}])  # else this dataset, with another backbone
    assert estimate_seconds(config, ["finetune"], "D").seconds == pytest.approx(10.0 + 50.0)


def test_compare_says_the_estimate_before_and_the_time_after(tiny, capsys):
    from transferlab.__main__ import main

    argv = ["compare", "--dataset", "test_blobs", "--backbone", "test_tiny", "--per-class", "8", "--freeze-depth", "1"]
    assert main([*argv, "--steps", "20"]) == 0
    first = capsys.readouterr().err
    assert "no estimate yet" in first and "took " in first
    assert main([*argv, "--steps", "20", "--seed", "1"]) == 0
    second = capsys.readouterr().err
    assert "estimated: about " in second and "(estimated " in second


def test_a_lessons_own_arms_and_the_baselines_are_measured_too(tiny):
    from transferlab import Arm

    longer = Arm("scratch, 10x steps", init="random", freeze="none", budget_mult=10)
    compare(replace(tiny, epochs=None, steps=5), ["finetune", "pixels", longer])
    measured = {m["arm"]: m for m in json.loads(book_path().read_text())["arms"]}
    assert set(measured) == {"finetune", "pixels", "scratch, 10x steps"}
    assert measured["scratch, 10x steps"]["steps"] == 50 and measured["pixels"]["steps"] == 0

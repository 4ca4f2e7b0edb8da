"""The benchmark's two loops must compute the same experiment; speed itself is measured by `make bench`."""

import json

import pytest

from transferlab import ExperimentConfig, compare, create_backbone, get_spec
from transferlab.bench import forward_flops, loop_gflop, main, run_gpu_throughput, run_reference, run_transferlab


def test_reference_and_transferlab_loops_train_the_same_experiment():
    config = ExperimentConfig(
        dataset="test_blobs",
        backbone="test_tiny",
        per_class=16,
        freeze_depth=1,
        epochs=12,
        batch_size=8,
        lr=1e-2,
        test_per_class=None,
        val_per_class=5,
    )
    ref, ours = run_reference(config), run_transferlab(config)
    assert ref["train_images"] == ours["train_images"] == 12 * 64
    assert ref["test_accuracy"] > 0.6 and ours["test_accuracy"] > 0.6  # both learn the task (chance: 0.25)
    assert abs(ref["test_accuracy"] - ours["test_accuracy"]) < 0.2
    # The reference runs the frozen block for every image every epoch; transferlab once per image.
    assert ref["gflop"] > ours["gflop"] > 0


def test_forward_flops_split_the_network_at_k():
    model = create_backbone("test_tiny", 4, pretrained=False)
    n = get_spec("test_tiny").num_blocks
    splits = [forward_flops(model, 16, k) for k in range(n + 1)]
    full = sum(splits[0])
    assert splits[0][0] == 0 and all(abs(sum(s) - full) < 1e-6 * full for s in splits)
    assert [s[0] for s in splits] == sorted(s[0] for s in splits) and splits[n][1] < splits[0][1]
    assert model.training  # counting leaves the model as it was
    assert loop_gflop((1e9, 2e9), prefix_images=1, train_images=1, eval_images=1) == 1 + 3 * 2 + 2


def test_one_case_runs_alone_and_prints_its_figures(capsys):
    # What a reader runs to time the reference loop against `compare` themselves.
    argv = ["--case", "transferlab", "--freeze-depth", "9", "--per-class", "2", "--epochs", "1"]
    assert main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["train_images"] == 20 and figures["peak_rss_mb"] > 0
    # The accuracy printed is that of the experiment the command line asked for (its features now cached).
    asked = ExperimentConfig(per_class=2, epochs=1, freeze_depth=9, seed=0)
    assert figures["test_accuracy"] == compare(asked, arms=["finetune"]).accuracy("finetune")
    with pytest.raises(SystemExit):
        main(["--case", "tutorial"])
    assert "--case must be one of reference, transferlab, dashboard" in capsys.readouterr().err


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_the_gpu_throughput_case_runs_its_code_on_the_cpu(backbone):
    # The GPU case only runs where CUDA is; the same code, tiny, must not wait for one to fail.
    figures = run_gpu_throughput(backbone, steps=1, batch=2, size=32, device="cpu")
    assert figures["images_per_s"] > 0


def test_the_class_case_trains_each_distinct_arm_once_and_more_workers_give_verdicts_sooner(tmp_path, capsys):
    import random
    from dataclasses import replace

    from transferlab.serve.classroom import DEPTHS, MAP_SIZES, class_settings, cost
    from transferlab.training.config import unit_config
    from transferlab.training.outcome import comparison_key

    costs = {"finetune": {"0": 20.0, "5": 14.0, "9": 9.0}, "scratch": 20.0}
    (tmp_path / "costs.json").write_text(json.dumps(costs))
    assert main(["--case", "class", "--sessions", "60", "--maps", "2", "--costs", str(tmp_path / "costs.json")]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()[-3:]]
    # The arms asked for, drawn here as the case draws them, and which of them are the same run.
    base = ExperimentConfig(per_class=10, freeze_depth=4, steps=60)
    asked = [(c, a) for c in class_settings(60, random.Random(0), base) for a in ("finetune", "scratch")]
    asked += [(replace(base, freeze_depth=k, per_class=n), "finetune") for k in DEPTHS for n in MAP_SIZES]
    asked += [(replace(base, freeze_depth=0, per_class=n), "scratch") for n in MAP_SIZES]
    distinct = {comparison_key(unit_config(c, a), (a,), "class"): (unit_config(c, a), a) for c, a in asked}
    work = sum(cost(costs, a, u.freeze_depth) * u.steps / 60 for u, a in distinct.values())
    assert [p["workers"] for p in printed] == [1, 2, 8]
    for figures in printed:
        assert figures["arms_asked"] == 60 * 2 + 2 * 55 and figures["arms_trained"] == len(distinct)
        assert 0 <= figures["verdict_median_s"] <= figures["verdict_p95_s"] <= figures["verdict_worst_s"]
    # One worker is never idle (the maps arrive first): the class ends when all the work is done.
    assert printed[0]["all_done_s"] == pytest.approx(work, abs=0.1)
    assert printed[0]["verdict_median_s"] > printed[1]["verdict_median_s"] > printed[2]["verdict_median_s"]

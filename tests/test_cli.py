import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transferlab import ExperimentConfig
from transferlab.__main__ import main


def test_backbones_lists_blocks_and_weight_status(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "stem, stage1, stage2" in out and "labnet" in out
    assert "test_tiny" not in out


def test_datasets_say_what_is_available_and_why_not(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "image_folder" in out and "--root" in out


def test_compare_json_has_both_arms(capsys):
    argv = [
        "compare",
        "--dataset",
        "test_blobs",
        "--backbone",
        "test_tiny",
        "--per-class",
        "8",
        "--freeze-depth",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--precision",
        "fp32",
        "--json",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert set(result["arms"]) == {"finetune", "scratch"}
    assert result["config"]["precision"] == "fp32" and result["arms"]["finetune"]["bf16"] == "no"
    assert result["arms"]["scratch"]["seconds"] > 0 and "step 8/8 (epoch 2.0)" in captured.err  # progress: stderr
    # The gap with its 95% interval, and the verdict saying what the interval says.
    acc = {arm: row["test_accuracy"] for arm, row in result["arms"].items()}
    gap = result["gap_interval"]
    assert gap["difference"] == pytest.approx(acc["finetune"] - acc["scratch"]) == pytest.approx(result["gap"])
    assert gap["low"] <= gap["difference"] <= gap["high"] and gap["beyond_noise"] == (gap["low"] > 0 or gap["high"] < 0)
    best, other = sorted(acc, key=acc.get, reverse=True)
    said = f"{best} beats {other}" if gap["beyond_noise"] else "are within noise of each other"
    assert said in result["verdict"] and result["differences"][0]["a"] == best


def test_compare_prints_progress_and_a_table(capsys):
    argv = [
        "compare",
        "--dataset",
        "test_blobs",
        "--backbone",
        "test_tiny",
        "--per-class",
        "4",
        "--freeze-depth",
        "3",
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--arms",
        "finetune",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # The budget in both units: 16 images in batches of 8 are 2 steps an epoch.
    assert "6 steps of up to 8 images = 3 epochs of 16 images" in out
    assert "finetune  step 2/6 (epoch 1.0)" in out and "val_accuracy" in out and "finetune: test accuracy" in out
    assert main([*argv, "--epochs", "2"]) == 2  # one budget: steps or epochs, said before any work
    assert "give the budget in steps or in epochs, not both" in capsys.readouterr().err


def test_compare_with_more_seeds_judges_the_methods_over_every_draw(capsys):
    argv = ["compare", "--dataset", "test_blobs", "--backbone", "test_tiny", "--per-class", "8", "--freeze-depth", "1",
            "--steps", "8", "--batch-size", "8", "--precision", "fp32", "--more-seeds", "2", "--json"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert "one training draw of each arm" in result["verdict"].lower()  # the seed-0 verdict: two trained models
    [methods] = result["over_seeds"]  # finetune against scratch, over seeds 0, 1 and 2
    assert methods["seeds"] == 3 and "paired by seed" in methods["method"]
    assert methods["low"] < methods["high"] and methods["examples"] > 0


def test_settings_that_cannot_work_exit_2_with_a_message(capsys):
    assert main(["compare", "--backbone", "test_tiny", "--dataset", "test_blobs", "--freeze-depth", "9"]) == 2
    assert "freeze_depth must be 0..3" in capsys.readouterr().err
    assert main(["compare", "--dataset", "image_folder"]) == 2
    assert "needs a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_names_a_cat_first_for_a_cat_photo(tmp_path):
    from PIL import Image
    from skimage import data

    path = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    out = subprocess.run(
        [sys.executable, "-m", "transferlab", "predict", str(path)], capture_output=True, text=True, check=True
    ).stdout
    first = out.splitlines()[1]
    assert "cat" in first and "%" in first
    assert len(out.splitlines()) == 6


def test_make_lab_opens_cleared_copies_of_the_lessons_with_kernels_that_import_the_engine(tmp_path, monkeypatch):
    from transferlab import launch

    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(["make", "-n", "-s", "lab"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert "transferlab lab" in dry
    assert launch.lessons_source() == root / "lessons"
    # In a clone too, the learner gets copies in ./transferlab-lessons; lessons/ is never opened in place.
    started = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launch.os, "execv", lambda program, argv: started.append(argv))
    launch.run_lab(None)
    mine = tmp_path / "transferlab-lessons"
    assert started == [launch.lab_command(mine)] and f"--notebook-dir={mine}" in started[0]
    assert {p.name for p in mine.glob("*.ipynb")} == {p.name for p in (root / "lessons").glob("*.ipynb")}
    # Jupyter starts each kernel in that folder, with no PYTHONPATH: the editable install finds the engine.
    probe = [sys.executable, "-c", "import transferlab; print(transferlab.__file__)"]
    env = {"PATH": os.environ["PATH"]}
    out = subprocess.run(probe, cwd=mine, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).parent == root / "transferlab"


def test_copy_lessons_clears_the_outputs_and_never_overwrites_a_learners_edits(tmp_path):
    from transferlab.launch import copy_lessons

    source = Path(__file__).resolve().parents[1] / "lessons"
    copied = copy_lessons(source, tmp_path)
    notebooks = sorted(p for p in copied if p.suffix == ".ipynb")
    assert [p.name for p in notebooks] == sorted(p.name for p in source.glob("*.ipynb"))
    assert (tmp_path / "nbval_sanitize.cfg").read_bytes() == (source / "nbval_sanitize.cfg").read_bytes()
    for path in notebooks:
        mine, theirs = json.loads(path.read_text()), json.loads((source / path.name).read_text())
        code = [cell for cell in mine["cells"] if cell["cell_type"] == "code"]
        assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code), path.name
        assert [cell["source"] for cell in mine["cells"]] == [cell["source"] for cell in theirs["cells"]]
        assert path.read_text().endswith("}\n")
    # The executed notebooks, for the web view, keep their outputs.
    executed = json.loads((source / "02_feature_extraction_or_fine_tuning.ipynb").read_text())
    assert any(cell.get("outputs") for cell in executed["cells"] if cell["cell_type"] == "code")
    # A second copy leaves the learner's work alone.
    edited = tmp_path / "02_feature_extraction_or_fine_tuning.ipynb"
    edited.write_text("{}")
    assert copy_lessons(source, tmp_path) == [] and edited.read_text() == "{}"


def test_importing_the_package_is_instant_and_names_load_on_first_use():
    # `python -m transferlab` imports the package, then restarts under tcmalloc: an eager
    # package would import torch twice (about 2.5 s of every command).
    code = (
        "import sys, transferlab as tl\n"
        "assert 'torch' not in sys.modules\n"
        "assert tl.compare.__module__ == 'transferlab.training.comparison' and 'compare' in dir(tl)\n"
        "assert 'plotly' not in sys.modules  # training needs no plotting library\n"
        "try:\n    tl.no_such_name\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "has no attribute 'no_such_name'" in out


def test_runs_lists_the_store_and_exports_csv(tmp_path, tiny, capsys):
    from transferlab import compare
    from transferlab.training.outcome import Outcome
    from transferlab.training.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    store.save(Outcome.of(compare(tiny)))
    assert main(["runs", "--store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"1 comparison(s) in {store.path}") and "test_tiny" in out and "test_blobs" in out
    csv = tmp_path / "runs.csv"
    assert main(["runs", "--store", str(store.path), "--csv", str(csv), "--histories", str(tmp_path / "h.csv")]) == 0
    import pandas as pd

    rows = pd.read_csv(csv)
    assert sorted(rows.arm) == ["finetune", "scratch"] and rows.test_accuracy.between(0, 1).all()
    assert len(pd.read_csv(tmp_path / "h.csv")) == 2 * (2 * tiny.epochs + 1)  # train and val per epoch, test
    assert main(["runs", "--store", str(store.path), "--csv", str(tmp_path / "no" / "such" / "folder.csv")]) == 2
    assert "error:" in capsys.readouterr().err


def test_compare_exports_the_finetune_model_and_refuses_a_bad_name_before_training(tmp_path, capsys):
    import onnxruntime as ort

    argv = [
        "compare",
        "--dataset",
        "test_blobs",
        "--backbone",
        "test_tiny",
        "--per-class",
        "8",
        "--steps",
        "4",
        "--freeze-depth",
        "1",
    ]
    assert main([*argv, "--export", str(tmp_path / "model.h5")]) == 2
    assert ".onnx, .torchscript or .pt" in capsys.readouterr().err and not list(tmp_path.iterdir())
    assert main([*argv, "--export", str(tmp_path / "model.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    probabilities = session.run(None, {"image": np.zeros((40, 70, 3), np.uint8)})[0]
    assert probabilities.shape == (len(json.loads(session.get_modelmeta().custom_metadata_map["classes"])),)


def test_sweep_prints_the_map_and_a_second_call_trains_nothing(tmp_path, capsys):
    store = str(tmp_path / "runs.sqlite")
    argv = ["sweep", "--dataset", "test_blobs", "--backbone", "test_tiny", "--depths", "0-1", "--sizes", "2,4"]
    argv += ["--steps", "4", "--store", store, "--csv", str(tmp_path / "map.csv")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "8 rows; 0 from" in out and "finetune minus scratch" in out
    assert main(argv) == 0
    assert "8 rows; 8 from" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="give numbers like 0-9"):
        main(["sweep", "--depths", "a-b", "--store", store])


def test_choose_and_multitask_from_the_command_line(capsys):
    from transferlab.__main__ import main

    tiny = ["--dataset", "test_blobs", "--per-class", "6", "--freeze-depth", "1", "--steps", "4", "--seeds", "0"]
    assert main(["choose", *tiny, "--backbones", "test_tiny,labnet"]) == 0
    out = capsys.readouterr().out
    assert "test_tiny" in out and "labnet" in out and "predict_images_per_s" in out
    assert main(["multitask", *tiny, "--backbone", "test_tiny", "--tasks", "0-1", "2-3"]) == 0
    out = capsys.readouterr().out
    assert "classes 0,1" in out and "classes 2,3" in out and "gain" in out
    assert main(["multitask", *tiny, "--backbone", "test_tiny", "--tasks", "0-3"]) == 2
    assert "at least two tasks" in capsys.readouterr().err


def test_every_config_field_is_an_option_of_compare_with_its_help(capsys):
    from dataclasses import fields

    from transferlab.training.settings import SETTINGS

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in fields(ExperimentConfig):
        option = "--" + f.name.replace("_", "-")
        assert option in text, option
        assert " ".join(f.metadata["help"].split())[:40] in text, f.name
    assert [s.name for s in SETTINGS] == [f.name for f in fields(ExperimentConfig)]


def test_options_of_every_kind_reach_the_config():
    from transferlab.__main__ import build_parser
    from transferlab.training.settings import config_from_arguments

    argv = ["compare", "--per-class", "all", "--classes", "0,2", "--no-freeze-bn-stats", "--augment"]
    argv += ["--label-noise", "0.25", "--test-per-class", "none", "--weight-decay", "0.01", "--image-size", "32"]
    config = config_from_arguments(build_parser().parse_args(argv))
    assert config == ExperimentConfig(
        per_class=None, classes=(0, 2), freeze_bn_stats=False, augment=True, label_noise=0.25,
        test_per_class=None, weight_decay=0.01, image_size=32,
    )  # fmt: skip
    assert config_from_arguments(build_parser().parse_args(["compare"])) == ExperimentConfig()
    # The commands that vary a field themselves take the rest from the same options.
    sweep = build_parser().parse_args(["sweep", "--label-noise", "0.5", "--depths", "0,3"])
    assert config_from_arguments(sweep).label_noise == 0.5 and not hasattr(sweep, "freeze_depth")


def test_a_setting_reads_back_what_it_writes():
    from transferlab.training.settings import SETTINGS

    values = {"per_class": None, "classes": (3, 1), "augment": True, "lr": 0.003, "test_per_class": None}
    for s in SETTINGS:
        value = values.get(s.name, s.default)
        assert s.parse(s.format(value)) == value, s.name
    with pytest.raises(ValueError):
        next(s for s in SETTINGS if s.name == "augment").parse("maybe")

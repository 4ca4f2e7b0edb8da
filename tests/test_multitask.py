import threading
from dataclasses import replace

import pytest
import torch

from transferlab import ConfigError, compare, plots
from transferlab.errors import StopTraining
from transferlab.studies.multitask import MultitaskRun, compare_multitask, task_configs, train_tasks
from transferlab.training.callbacks import Callback, History, StopOnEvent

HALVES = {"top": {"classes": (0, 1)}, "bottom": {"classes": (2, 3)}}


@pytest.fixture(scope="module")
def result(tiny):
    # A rate and a budget at which the tiny network learns every task, under float32 and bfloat16
    # frozen passes alike (at 30 steps some runs stayed near chance on a CPU without native bf16).
    return compare_multitask(replace(tiny, lr=5e-2, epochs=None, steps=60), HALVES, seeds=(0, 1))


def test_one_task_alone_is_exactly_a_finetune_run(tiny):
    # k = 1 of 3: two blocks with BatchNorm train, so the shared forward pass and the optimiser
    # must match the engine's run step for step.
    config = replace(tiny, classes=(0, 1, 2))
    model, rows, history = train_tasks({"task": config})
    run = compare(config, ["finetune"]).runs["finetune"]
    assert rows[0]["test_accuracy"] == run.test_accuracy
    assert rows[0]["val_accuracy"] == run.val_accuracy
    assert [h["step"] for h in history] == list(run.plan.eval_steps)
    for (name, mine), theirs in zip(model.blocks.state_dict().items(), run.model.blocks.state_dict().values()):
        assert torch.equal(mine, theirs), name
    for mine, theirs in zip(model.head["task"].state_dict().values(), run.model.head.state_dict().values()):
        assert torch.equal(mine, theirs)


def test_each_task_has_its_own_head_sized_for_its_classes(tiny):
    two_sizes = {"two": {"classes": (0, 1)}, "three": {"classes": [1, 2, 3]}}
    configs = task_configs(replace(tiny, epochs=None, steps=6), two_sizes)  # steps: the epochs differ
    model, rows, _ = train_tasks(configs)
    assert list(model.head) == ["two", "three"]
    assert [model.head[t][-1].out_features for t in ("two", "three")] == [2, 3]
    assert [r["task"] for r in rows] == ["two", "three"]
    assert rows[0]["seconds"] == rows[1]["seconds"]  # one run trained both


def test_the_table_has_every_task_setting_and_seed(result):
    t = result.table
    assert len(t) == 2 * 2 * 2 and list(t.columns[:4]) == ["task", "setting", "trained_with", "seed"]
    together = t[t.setting == "together"].set_index(["task", "seed"]).trained_with
    assert together.loc[("top", 0)] == "bottom" and together.loc[("bottom", 1)] == "top"
    assert (t[t.setting == "alone"].trained_with == "").all()
    assert (t.test_accuracy > 0.55).all()  # chance is 0.5 for two classes
    assert set(result.history.setting) == {"alone", "together"} and set(result.history.split) == {"val"}


def test_gains_are_together_minus_alone_seed_by_seed(result):
    g = result.gains()
    assert list(g.index) == ["top", "bottom"]
    rows = {(r.setting, r.seed): r.test_accuracy for r in result.table[result.table.task == "top"].itertuples()}
    diff = [rows["together", seed] - rows["alone", seed] for seed in (0, 1)]  # seed by seed, by hand
    assert g.loc["top", "gain"] == pytest.approx((diff[0] + diff[1]) / 2)
    assert (g.loc["top", "gain_min"], g.loc["top", "gain_max"]) == pytest.approx((min(diff), max(diff)))
    assert g.loc["top", "alone"] == pytest.approx((rows["alone", 0] + rows["alone", 1]) / 2)


def test_with_every_block_frozen_together_equals_alone(tiny):
    # Nothing that trains is shared, and each head gets only its own task's gradient.
    probe = compare_multitask(replace(tiny, freeze_depth=3), HALVES)
    assert probe.gains().gain.abs().max() == 0


def test_bad_task_settings_say_what_to_change(tiny):
    with pytest.raises(ConfigError, match="task 'top' sets lr; a task may set only dataset"):
        compare_multitask(tiny, {"top": {"classes": (0, 1), "lr": 0.1}, "bottom": {"classes": (2, 3)}})
    with pytest.raises(ConfigError, match="at least two tasks; got 1"):
        compare_multitask(tiny, {"top": {"classes": (0, 1)}})
    with pytest.raises(ConfigError, match="give its settings as a dict"):
        compare_multitask(tiny, {"top": (0, 1), "bottom": (2, 3)})
    with pytest.raises(ConfigError, match="one non-negative weight per task"):
        compare_multitask(tiny, HALVES, weights={"top": 1.0})
    with pytest.raises(ConfigError, match="freeze_depth must be 0..3"):
        compare_multitask(replace(tiny, freeze_depth=7), HALVES)
    with pytest.raises(ConfigError, match="give the budget in steps"):
        compare_multitask(tiny, {"top": {"classes": (0, 1)}, "bottom": {"classes": (2, 3), "per_class": 4}})
    with pytest.raises(ConfigError, match="differ in lr"):
        train_tasks({"a": tiny, "b": replace(tiny, lr=0.1)})


def test_multitask_bars_show_alone_and_together_per_task_with_the_spread(result):
    fig = plots.multitask_bars(result.table)
    assert [t.name for t in fig.data] == ["alone", "together"]
    assert all(list(t.x) == ["top", "bottom"] for t in fig.data)
    means = result.table.groupby(["setting", "task"]).test_accuracy.mean()
    assert fig.data[1].y[0] == pytest.approx(means[("together", "top")])
    assert fig.data[0].error_y.visible  # two seeds: a range


def test_a_multitask_run_is_a_run_with_the_engines_callbacks(tiny):
    configs = task_configs(tiny, HALVES)
    history = History()
    model, rows, _ = train_tasks(configs, callbacks=[history])
    records = history.frame()
    # Records per task, as any run's: a train and a val record per validation point, one test record.
    run_steps = list(MultitaskRun(configs).plan.eval_steps)
    for task, row in zip(HALVES, rows):
        mine = records[records.arm == task]
        assert mine[mine.split == "val"].step.tolist() == run_steps
        assert mine[mine.split == "train"].step.tolist() == run_steps
        assert mine[mine.split == "test"].accuracy.tolist() == [row["test_accuracy"]]
    # Stop reaches it between batches, as it reaches a comparison.
    stop = threading.Event()
    stop.set()
    with pytest.raises(StopTraining):
        train_tasks(configs, callbacks=[StopOnEvent(stop)])
    # Patience: it stops once the tasks' mean validation accuracy stops improving, and keeps its best step.
    patient = MultitaskRun(task_configs(replace(tiny, patience=1), HALVES))
    for _ in patient.rounds():
        pass
    assert patient.best_step is not None and patient.step <= patient.plan.steps


def test_a_stopped_multitask_comparison_says_so(tiny):
    class StopAfterFirstRecord(Callback):
        def on_record(self, run, record):
            raise StopTraining("stop requested")

    with pytest.raises(StopTraining):
        compare_multitask(tiny, HALVES, callbacks=[StopAfterFirstRecord()])

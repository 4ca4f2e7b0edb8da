"""Checked exercises: a learner's results against a question, answered with what holds, what is
missing and a hint, by the stats module's rule; never an error on a learner's settings."""

from types import SimpleNamespace

import pandas as pd

from transferlab import ExperimentConfig
from transferlab.stats import Difference
from transferlab.studies.exercises import (
    above_chance,
    beats_beyond_noise,
    fair_chance,
    shallowest_within_noise,
    verdict,
    within_noise,
)


def result(per_class: int, low: float, high: float, improving=(), arms=("finetune", "scratch")):
    """A stand-in comparison whose finetune - scratch interval is (low, high)."""
    estimate = (low + high) / 2
    return SimpleNamespace(
        config=ExperimentConfig(per_class=per_class),
        table=pd.DataFrame({"arm": list(arms)}),
        stopped=False,
        difference=lambda a, b: Difference(a, b, estimate, low, high, "paired bootstrap"),
        improving=lambda: list(improving),
    )


def test_beats_beyond_noise_is_done_once_one_result_has_its_interval_above_zero():
    tie = result(100, -0.01, 0.03)
    check = beats_beyond_noise([tie])
    assert not check.done and "none of your 1 comparison(s) has finetune ahead" in check.missing and check.hint
    assert "n=100, k=4, seed 0, default steps: finetune and scratch are within noise" in check.right
    check = beats_beyond_noise([tie, result(10, 0.2, 0.3)])
    assert check.done and str(check).startswith("Done.") and "n=10" in check.right
    assert "finetune beats scratch by 25.0 points" in check.right


def test_within_noise_and_results_it_cannot_judge():
    only_finetune = result(10, 0.2, 0.3, arms=("finetune",))
    check = within_noise([only_finetune, result(10, 0.2, 0.3)], "finetune", "scratch")
    assert not check.done and "Left out: n=10" in check.right and "one of finetune and scratch wins" in check.missing
    assert within_noise([result(100, -0.01, 0.03)], "finetune", "scratch").done
    assert not within_noise([], "probe", "finetune").done


def test_fair_chance_asks_for_a_run_in_which_scratch_had_stopped_improving():
    short = result(10, 0.2, 0.3, improving=("scratch",))
    check = fair_chance([short])
    assert not check.done and "still improving" in check.right and "patience=10" in check.hint
    assert fair_chance([short, result(10, 0.1, 0.2)]).done


def test_shallowest_within_noise_judges_the_learners_answer_over_seeds():
    # Four seeds: with two, one degree of freedom and Holm's adjustment for three comparisons tie everything.
    per_seed = {0: (0.70, 0.71, 0.69, 0.70), 2: (0.80, 0.82, 0.81, 0.80), 4: (0.81, 0.80, 0.80, 0.81),
                9: (0.60, 0.61, 0.60, 0.62)}  # fmt: skip
    rows = [(k, s, acc) for k, accs in per_seed.items() for s, acc in enumerate(accs)]
    table = pd.DataFrame(rows, columns=["freeze_depth", "seed", "val_accuracy"])
    assert "shallowest of those is freeze_depth=2" in shallowest_within_noise(table).right
    assert shallowest_within_noise(table, answer=2).done
    wrong = shallowest_within_noise(table, answer=4)
    assert not wrong.done and "freeze_depth=4 is within noise of the best, but not the shallowest" in wrong.missing
    one_seed = shallowest_within_noise(table[table.seed == 0], answer=2)
    assert not one_seed.done and "two seeds" in one_seed.right


def test_verdict_judges_the_learners_answer_by_the_interval_and_asks_for_the_settings():
    ahead = Difference("AdaBN", "source", -0.04, -0.06, -0.02, "paired bootstrap")
    assert not verdict(None, "tie", how="run the cell above").done
    assert verdict(None, "tie", how="run the cell above").hint == "run the cell above"
    unanswered = verdict(ahead, None)
    assert not unanswered.done and 'answer="AdaBN", "source" or "tie"' in unanswered.missing
    assert "source beats AdaBN by 4.0 points" in unanswered.right
    assert verdict(ahead, "source").done
    wrong = verdict(ahead, "tie")
    assert not wrong.done and wrong.missing == 'answer "source", not "tie".' and "wholly on one side" in wrong.hint
    assert "read the sign" in verdict(ahead, "AdaBN").hint
    tie = Difference("a", "b", 0.01, -0.02, 0.04, "paired bootstrap")
    assert verdict(tie, "tie").done and "covers zero" in verdict(tie, "a").hint
    # The exercise's settings, not the lesson's: no verdict counts until they are the asked ones.
    elsewhere = verdict(tie, "tie", needs={"per_class": (10, 5)})
    assert not elsewhere.done and "per_class = 5 (yours: 10)" in elsewhere.missing
    assert verdict(tie, "tie", needs={"per_class": (5, 5)}).done


def test_above_chance_asks_the_whole_interval_to_clear_guessing():
    guessing = [True] * 12 + [False] * 88  # 12% on 10 classes: its interval reaches 10%
    check = above_chance(guessing, 10, "scratch")
    assert not check.done and "chance is 10%" in check.right and "reaches down to chance" in check.right
    assert check.hint
    learned = above_chance([True] * 40 + [False] * 60, 10, "scratch, 10x steps")
    assert learned.done and "scratch, 10x steps: 40.0% on 100 test examples" in learned.right
    assert not above_chance([True] * 40 + [False] * 60, 10, "x", needs={"per_class": (10, 1)}).done


def test_a_fair_chance_for_any_of_an_arms_names_and_only_on_the_asked_settings():
    short = result(10, 0.2, 0.3, improving=("scratch",), arms=("finetune", "scratch"))
    longer = result(10, 0.2, 0.3, arms=("scratch, 10x steps",))
    check = fair_chance([short, longer], ("scratch", "scratch, 10x steps"))
    assert check.done and "scratch, 10x steps had stopped improving" in check.right
    assert "scratch was still improving" in check.right
    assert not fair_chance([short, longer], "scratch").done
    asked = fair_chance([longer], "scratch, 10x steps", needs={"steps": (60, 240)})
    assert not asked.done and "steps = 240 (yours: 60)" in asked.missing

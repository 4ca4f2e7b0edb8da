"""The one yardstick: intervals checked against textbook oracles, verdicts that call a tie a tie."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from tests import verdicts
from transferlab.stats import (
    best_within_noise,
    difference_in,
    holm,
    paired_difference,
    replicated_difference,
    seed_difference,
    spread,
)
from transferlab.training.comparison import still_improving
from transferlab.training.config import ExperimentConfig
from transferlab.training.outcome import Outcome

CURVES = Path(__file__).parent / "data" / "curves.csv"


def correctness(n: int, both: int, only_a: int, only_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Two arms' right/wrong answers on n examples: both right, only a right, only b right, rest wrong."""
    a = np.zeros(n, bool)
    b = np.zeros(n, bool)
    a[:both] = b[:both] = True
    a[both : both + only_a] = True
    b[both + only_a : both + only_a + only_b] = True
    return a, b


def test_paired_interval_matches_the_normal_approximation_of_the_paired_difference():
    a, b = correctness(2000, 1200, 140, 100)
    d = paired_difference(a, b, "a", "b")
    diff = (a.astype(int) - b.astype(int)).astype(float)
    se = diff.std(ddof=0) / np.sqrt(len(diff))  # the textbook standard error of a mean of paired differences
    assert d.estimate == pytest.approx(0.02)
    assert d.low == pytest.approx(0.02 - 1.96 * se, abs=0.002) and d.high == pytest.approx(0.02 + 1.96 * se, abs=0.002)
    # Pairing matters: an unpaired binomial interval of the same two accuracies is much wider.
    pa, pb = a.mean(), b.mean()
    unpaired = 1.96 * np.sqrt((pa * (1 - pa) + pb * (1 - pb)) / len(a))
    assert d.high - d.low < 0.6 * 2 * unpaired


def test_lesson_2s_one_point_win_is_a_tie_and_a_large_gap_is_a_win():
    # 2 000 test images, probe 68.9 % and finetune 67.9 %: about 8 % of images split the two arms.
    probe, finetune = correctness(2000, 1278, 100, 80)
    d = paired_difference(probe, finetune, "probe", "finetune")
    assert d.estimate == pytest.approx(0.01) and d.low < 0 < d.high and d.winner is None
    assert d.sentence().startswith("probe and finetune are within noise of each other (difference +1.0 points")
    big = paired_difference(*correctness(2000, 600, 700, 40), "finetune", "scratch")
    assert big.winner == "finetune" and big.sentence().startswith("finetune beats scratch by 33.0 points (95% interval")
    lost = paired_difference(*(answers := correctness(2000, 600, 40, 700)), "finetune", "scratch")
    assert lost.winner == "scratch" and lost.sentence().startswith("scratch beats finetune by 33.0 points")
    assert lost.low < lost.high < 0
    # The loser's interval is turned round with the sentence: the winner's lead, against the textbook.
    assert verdicts.check_all(lost.sentence(), dict(zip(["finetune", "scratch"], answers))) == [("scratch", "finetune")]


def test_identical_answers_are_a_tie_whose_interval_is_never_empty():
    a = np.array([True, False, True, True] * 50)
    d = paired_difference(a, a)
    assert d.estimate == 0 and d.low < 0 < d.high and not d.beyond_noise  # 200 examples cannot prove "equal"
    assert d.high == pytest.approx(1 - 0.025 ** (1 / 200))  # the disagreement rate 0 of 200 cannot rule out
    few = paired_difference(a[:4], ~a[:4])
    assert not few.judged and few.winner is None and "too little to judge" in few.sentence()


def test_four_disagreements_to_none_is_not_a_win():
    # Six held-out images, four answered right by a alone: the bootstrap alone says +33 to +100.
    a, b = correctness(6, 1, 4, 0)
    d = paired_difference(a, b, "a", "b")
    assert d.winner is None and d.low < 0 < d.high and d.examples == 6
    assert scipy_stats.binomtest(4, 4).pvalue == pytest.approx(0.125)  # the exact sign test agrees: no win
    assert paired_difference(*correctness(40, 10, 12, 0)).winner == "A"  # twelve to none is one


def test_paired_intervals_are_the_same_every_time():
    a, b = correctness(500, 300, 30, 20)
    assert paired_difference(a, b) == paired_difference(a, b)


def test_seed_intervals_match_scipys_t_tests():
    a = {0: 0.70, 1: 0.72, 2: 0.69, 3: 0.71}
    b = {0: 0.66, 1: 0.70, 2: 0.64, 3: 0.69}
    paired = seed_difference(a, b)
    ci = scipy_stats.ttest_rel(list(a.values()), list(b.values())).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ci.low, ci.high)) and "paired by seed" in paired.method
    c = {5: 0.60, 6: 0.66, 7: 0.62}
    welch = seed_difference(a, c)
    ci = scipy_stats.ttest_ind(list(a.values()), list(c.values()), equal_var=False).confidence_interval(0.95)
    assert (welch.low, welch.high) == pytest.approx((ci.low, ci.high)) and "unpaired" in welch.method
    with pytest.raises(ValueError, match="at least two seeds"):
        seed_difference({0: 0.5}, {0: 0.4})


def test_a_paired_seed_difference_that_keeps_its_sign_can_be_real_where_the_spread_says_noise():
    # Lesson 11's case: together minus alone -4.0 and -3.8 on two seeds, alone varying by 4 points.
    alone, together = {0: 0.80, 1: 0.76}, {0: 0.76, 1: 0.722}
    d = seed_difference(together, alone, "together", "alone")
    assert d.estimate == pytest.approx(-0.039) and d.winner == "alone"


def test_a_tidy_tables_arms_are_compared_paired_by_seed_counting_the_examples_noise():
    table = pd.DataFrame(
        [
            {"arm": arm, "seed": s, "test_accuracy": acc}
            for arm, accs in {"x": (0.8, 0.7, 0.9), "y": (0.7, 0.6, 0.8)}.items()
            for s, acc in enumerate(accs)
        ]
    )
    alone = difference_in(table, "x", "y")  # the seeds agree exactly and nothing says on how many examples
    assert alone.estimate == pytest.approx(0.1) and not alone.judged and alone.winner is None
    d = difference_in(table, "x", "y", examples=2000)  # bounded: at most the noise 2 000 examples can hold
    assert d.low < 0.1 < d.high and d.winner == "x" and d.high - d.low > 0.02
    assert difference_in(table, "x", "y", examples=20).winner is None  # 20 examples cannot tell
    with pytest.raises(ValueError, match="no rows with arm == 'z'"):
        difference_in(table, "x", "z")


def answer_rows(arm: str, answers: np.ndarray) -> list[dict]:
    """Rows of a sweep's table for `arm`, one per seed, with each test example's answer."""
    return [
        {"arm": arm, "seed": s, "test_accuracy": row.mean(), "test_correct": "".join("01"[int(c)] for c in row)}
        for s, row in enumerate(answers)
    ]


def test_equal_differences_on_every_seed_are_at_least_as_wide_as_one_seeds_paired_interval():
    a, b = correctness(2000, 1200, 140, 100)
    one = paired_difference(a, b)
    table = pd.DataFrame(answer_rows("a", np.array([a, a, a])) + answer_rows("b", np.array([b, b, b])))
    three = difference_in(table, "a", "b")  # three seeds, each the same two models: no more evidence than one
    assert three.estimate == pytest.approx(one.estimate) and three.seeds == 3 and three.examples == 2000
    assert three.high - three.low >= one.high - one.low
    assert "paired by seed" in three.method and "examples' noise" in three.method


def coverage(flip: float, n: int = 300, seeds: int = 3, repeats: int = 300) -> tuple[float, float]:
    """How often the interval covers the true difference of two methods, whose seeds answer each
    image as the method typically does, each answer flipped with probability `flip`; and how
    often the seeds-only t interval does. A fresh test set of n images from 20 000 each time."""
    rng = np.random.default_rng(0)
    qa = rng.beta(3, 1.2, 20_000)
    qb = np.clip(qa - rng.normal(0.03, 0.1, len(qa)), 0, 1)
    truth = ((qa - qb) * (1 - 2 * flip)).mean()
    covered = covered_by_seeds = 0
    for _ in range(repeats):
        images = rng.choice(len(qa), n, replace=False)
        A = (rng.random(n) < qa[images]) ^ (rng.random((seeds, n)) < flip)
        B = (rng.random(n) < qb[images]) ^ (rng.random((seeds, n)) < flip)
        d = replicated_difference(A, B)
        covered += d.low <= truth <= d.high
        s = seed_difference(dict(enumerate(A.mean(1))), dict(enumerate(B.mean(1))))
        covered_by_seeds += s.low <= truth <= s.high
    return covered / repeats, covered_by_seeds / repeats


def test_the_interval_covers_the_truth_95_times_in_100_whether_seeds_are_alike_or_far_apart():
    alike, alike_seeds_only = coverage(flip=0.005)
    apart, _ = coverage(flip=0.2)
    assert 0.92 <= alike <= 1 and 0.92 <= apart <= 1  # at least 95 in 100, give or take 300 draws
    assert alike_seeds_only < 0.6  # the seeds' spread alone leaves out the test images' noise


def test_intervals_stay_within_100_points_and_a_lower_end_near_zero_shows_its_digits():
    far = seed_difference({0: 0.99, 1: 0.2}, {0: 0.01, 1: 0.01}, examples=50)
    assert -1 <= far.low and far.high <= 1
    close = replace(paired_difference(*correctness(2000, 1200, 140, 100)), low=0.0004)
    assert "+0.04 to" in close.sentence() and "+0.0 to" not in close.sentence()


def test_a_family_is_adjusted_by_holm_and_a_tie_still_covers_zero():
    clear = paired_difference(*correctness(2000, 600, 700, 40), "finetune", "scratch")
    edge = paired_difference(*correctness(2000, 1200, 122, 90), "probe", "pixels")
    assert edge.winner == "probe"  # alone, just beyond noise
    adjusted = holm([clear, edge, edge, edge])
    assert adjusted[0].winner == "finetune" and adjusted[0].confidence == pytest.approx(1 - 0.05 / 4)
    assert all(d.winner is None and d.low < 0 < d.high for d in adjusted[1:])  # one of four: no longer a win
    assert "Holm-adjusted" in adjusted[1].method and "98.8% interval" in adjusted[0].sentence()
    assert holm([edge]) == [edge]


def test_spread_is_the_standard_deviation():
    import statistics

    values = [0.61, 0.64, 0.7]
    assert spread(values) == pytest.approx(statistics.stdev(values)) and spread([0.5]) == 0.0


def test_the_best_setting_and_those_within_noise_of_it_are_chosen_on_what_is_asked():
    rows = [
        {"depth": k, "seed": s, "val_accuracy": v, "test_accuracy": 1 - v}
        for k, per_seed in {3: [0.70, 0.72, 0.71], 6: [0.71, 0.72, 0.72], 9: [0.60, 0.61, 0.62]}.items()
        for s, v in enumerate(per_seed)
    ]
    table = best_within_noise(pd.DataFrame(rows), by="depth")
    assert table.depth.tolist() == [6, 3, 9] and table.ties_best.tolist() == [True, True, False]
    assert table.spread.iloc[0] == pytest.approx(np.std([0.71, 0.72, 0.72], ddof=1))


def outcome(predictions: dict[str, np.ndarray], labels: np.ndarray) -> Outcome:
    table = pd.DataFrame(
        [{"arm": a, "test_accuracy": float((p == labels).mean()), "seconds": 1.0} for a, p in predictions.items()]
    )
    history = pd.DataFrame(columns=["arm", "epoch", "step", "split", "loss", "accuracy", "images_seen", "seconds"])
    return Outcome(ExperimentConfig(), tuple(predictions), table, history, ("a", "b"), labels, predictions, {})


def test_the_verdict_calls_a_tie_a_tie_and_names_the_interval():
    labels = np.zeros(2000, dtype=np.int64)
    probe, finetune = correctness(2000, 1278, 100, 80)
    result = outcome({"probe": (~probe).astype(np.int64), "finetune": (~finetune).astype(np.int64)}, labels)
    text = result.verdict()
    assert text.startswith("probe and finetune are within noise of each other (difference +1.0 points, 95% interval")
    assert "beats" not in text and verdicts.check_all(text, {"probe": probe, "finetune": finetune}) == [
        ("probe", "finetune")
    ]
    scratch = np.ones(2000, dtype=np.int64)
    scratch[:500] = 0
    result = outcome({"finetune": (~finetune).astype(np.int64), "scratch": scratch}, labels)
    assert result.verdict().startswith("finetune beats scratch by 42.9 points (95% interval")
    answers = {"finetune": finetune, "scratch": scratch == labels}
    assert verdicts.check_all(result.verdict(), answers) == [("finetune", "scratch")]


def test_still_improving_fires_on_real_rising_curves_under_the_cosine_schedule_and_not_on_plateaus():
    # Recorded runs of EfficientNet-Lite0 on Fashion-MNIST, 10 per class, k = 4 (lesson 2's setting):
    # 60 steps for each arm, and scratch again with 600 steps.
    curves = pd.read_csv(CURVES)
    lesson = curves[curves.run == "lesson2"]
    assert still_improving(lesson, "scratch")  # 10 % -> 33 %, most of it in the second half
    assert not still_improving(lesson, "finetune") and not still_improving(lesson, "probe")  # level by a third
    assert not still_improving(curves[curves.run == "scratch600"], "scratch")  # ten times the steps: levelled
    # The old rule (last point the best, 2 points above the point two thirds in) missed the rising one.
    acc = lesson[lesson.arm == "scratch"].accuracy.to_numpy()
    assert not (acc[-1] >= acc.max() and acc[-1] - acc[round(len(acc) * 2 / 3) - 1] >= 0.02)


def test_one_accuracy_has_a_wilson_interval_that_stays_open_at_the_extremes():
    from transferlab.stats import accuracy_interval

    assert accuracy_interval([True] * 80 + [False] * 20) == pytest.approx((0.8, 0.7112, 0.8666), abs=1e-4)
    all_right = accuracy_interval([True] * 12)
    assert all_right[0] == all_right[2] == 1.0 and all_right[1] == pytest.approx(0.7575, abs=1e-4)
    with pytest.raises(ValueError, match="correctness"):
        accuracy_interval([])


def test_an_arm_that_never_left_chance_is_named_in_the_verdict():
    labels = np.tile([0, 1], 500)  # two classes: guessing gets half
    finetune = labels.copy()
    finetune[:100] = 1 - finetune[:100]  # 90 % right
    result = outcome({"finetune": finetune, "scratch": np.zeros(1000, dtype=np.int64)}, labels)  # 50 %: a guess
    assert result.at_chance() == ["scratch"]
    assert "scratch never left chance (50% for guessing" in result.verdict()

"""One yardstick for every comparison: a difference in accuracy with its 95% interval.

Everything in the kit that says "beats", "ties", "within noise" or "best" asks this module.

- **One training draw of each arm** (`paired_difference`): the two arms answered the *same* test
  examples, so the difference is judged example by example: a bootstrap over the examples of the
  difference in correctness, widened where needed to the exact sign test on the examples where
  the arms disagree (with few disagreements the bootstrap is too sure: 4 against 0 is p = 0.125).
  This judges two *trained models*: another seed, or another processor's rounding, trains others.
- **Several training draws on the same examples** (`replicated_difference`): the difference's
  variance counts both sources of noise, the seeds' (training draws, paired by seed where both
  arms share them) and the examples' (every seed is scored on the same images, so the seeds'
  spread alone leaves that out), with Welch's degrees of freedom. This judges *methods*.
- **Tables** (`difference_in`, `best_within_noise`): rows that carry each example's answer
  (`test_correct`, `val_correct`) are judged as above; rows with only an accuracy get the seeds'
  noise plus a bound on the examples' (`seed_difference(examples=n)`), wider than the truth.
- **Families**: verdicts shown together are adjusted by Holm's step-down rule (`holm`).
- The **spread** of a set of accuracies is their standard deviation (`spread`): one word, one
  definition, everywhere.

A difference whose interval covers zero is a tie: "A and B are within noise of each other". An
interval never has zero width and never passes +-100 points; where the data cannot judge at all
(five examples or fewer, or seeds that agree exactly with no count of examples), it says so.

    >>> d = paired_difference(correct_a, correct_b, "finetune", "probe")
    >>> d.sentence()   # 'finetune and probe are within noise of each other (difference -1.0 points, ...)'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd

__all__ = [
    "CONFIDENCE",
    "Difference",
    "accuracy_interval",
    "best_within_noise",
    "difference_in",
    "holm",
    "paired_difference",
    "replicated_difference",
    "seed_difference",
    "spread",
]

CONFIDENCE = 0.95
RESAMPLES = 4000  # bootstrap resamples: the interval's ends move by < 0.1 points between seeds of the bootstrap
FEW_SPLIT = 50  # below this many examples that split two arms over seeds, the exact sign test joins the t interval


@dataclass(frozen=True)
class Difference:
    """Accuracy of arm `a` minus arm `b` (fractions), with its interval and how it was judged.

    `examples`: how many examples each arm answered; `seeds`: training draws behind the arm with
    fewer (1: a statement about two trained models, more: about two methods); `judged`: False
    when the data cannot tell the arms apart whatever they answered (`method` says why).
    """

    a: str
    b: str
    estimate: float
    low: float
    high: float
    method: str
    examples: int | None = None
    seeds: int = 1
    confidence: float = CONFIDENCE
    judged: bool = True
    redo: Callable[[float], Difference] | None = field(default=None, compare=False, repr=False)

    @property
    def beyond_noise(self) -> bool:
        """Whether the interval excludes zero: only then does one arm beat the other."""
        return self.judged and (self.low > 0 or self.high < 0)

    @property
    def winner(self) -> str | None:
        """The arm on whose side of zero the whole interval lies, or None for a tie."""
        if not self.beyond_noise:
            return None
        return self.a if self.low > 0 else self.b

    def at(self, confidence: float) -> Difference:
        """The same difference with an interval at another confidence (what `holm` needs)."""
        if self.redo is None:
            raise ValueError(f"this difference ({self.method}) cannot be recomputed at another confidence")
        return self.redo(confidence)

    def _level(self) -> str:
        return f"{self.confidence * 100:.3g}%"

    def interval(self) -> str:
        """E.g. "95% interval +1.2 to +4.0 points"."""
        return f"{self._level()} interval {_points(self.low)} to {_points(self.high)} points"

    def scope(self) -> str:
        """What the verdict is about: two trained models (one draw) or two methods (several)."""
        on = f", judged on {self.examples:,} test examples" if self.examples else ""
        if self.seeds == 1:
            return f"one training draw of each arm{on}: a verdict on these trained models, not yet on the methods"
        return f"{self.seeds} training draws of each arm{on}: a verdict on the methods, counting seeds and examples"

    def sentence(self) -> str:
        """ "A beats B by X points (95% interval L to U)", or "A and B are within noise of each
        other (difference X points, 95% interval L to U)"; always from the interval."""
        if not self.judged:
            return f"{self.a} and {self.b} cannot be told apart here: too little to judge ({self.method})"
        if self.winner is None:
            return (
                f"{self.a} and {self.b} are within noise of each other "
                f"(difference {_points(self.estimate)} points, {self.interval()})"
            )
        flip = -1 if self.winner == self.b else 1
        loser = self.b if flip == 1 else self.a
        low, high = sorted((self.low * flip, self.high * flip))
        return (
            f"{self.winner} beats {loser} by {self.estimate * flip * 100:.1f} points "
            f"({self._level()} interval {_points(low)} to {_points(high)})"
        )

    def as_dict(self) -> dict:
        """The plain numbers, for JSON and tables."""
        return {
            "a": self.a,
            "b": self.b,
            "difference": self.estimate,
            "low": self.low,
            "high": self.high,
            "beyond_noise": self.beyond_noise,
            "examples": self.examples,
            "seeds": self.seeds,
            "confidence": self.confidence,
            "method": self.method,
        }


def _points(x: float) -> str:
    """A fraction as signed points, one decimal; two where one would show a non-zero end as 0.0."""
    return f"{x * 100:+.2f}" if x != 0 and abs(x * 100) < 0.05 else f"{x * 100:+.1f}"


def _too_few(n: int, confidence: float) -> bool:
    """Whether n examples cannot show a difference even if every one of them went one arm's way."""
    return 2 * 0.5**n > 1 - confidence


def _sign_interval(wins: int, losses: int, n: int, confidence: float) -> tuple[float, float]:
    """The difference's interval from the exact sign test on the examples the arms split (wins for
    a, losses for a): Clopper-Pearson for a's share of them, scaled to all n examples. With none
    split, the difference is at most the disagreement rate that n examples cannot rule out."""
    from scipy import stats

    split = wins + losses
    if split == 0:
        most = 1 - ((1 - confidence) / 2) ** (1 / n)
        return -most, most
    share = stats.binomtest(wins, split).proportion_ci(confidence, method="exact")
    return (2 * share.low - 1) * split / n, (2 * share.high - 1) * split / n


def _bootstrap(values: np.ndarray, resamples: int, confidence: float) -> tuple[float, float]:
    """The percentile interval of the mean of `values` (one per example) over examples resampled
    with replacement. The values take few levels (-1, 0, +1; or multiples of 1/k over k seeds), so
    resampling examples is a multinomial draw of the levels' counts: exact, and microseconds."""
    levels, counts = np.unique(values, return_counts=True)
    n = len(values)
    means = np.random.default_rng(0).multinomial(n, counts / n, size=resamples) @ levels / n
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    a: str = "A",
    b: str = "B",
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Difference:
    """Accuracy of `a` minus `b` on the same test examples: one trained model of each.

    Each example contributes d = correct_a - correct_b (-1, 0 or +1); the interval is the bootstrap
    of their mean over the examples (`_bootstrap`), widened to the exact sign test's on the
    disagreements where that is wider (few disagreements). Seeded: the same inputs give the same
    interval.
    """
    ca, cb = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if ca.shape != cb.shape or ca.ndim != 1 or len(ca) == 0:
        raise ValueError(f"need the correctness of both arms on the same test examples, got {ca.shape} and {cb.shape}")
    n = len(ca)
    d = ca.astype(int) - cb.astype(int)
    low, high = _bootstrap(d, resamples, confidence)
    wins, losses = int((d == 1).sum()), int((d == -1).sum())
    exact_low, exact_high = _sign_interval(wins, losses, n, confidence)
    split = wins + losses
    method = f"paired over {n:,} test examples: bootstrap, and the exact sign test on the {split} they split"
    redo = partial(paired_difference, ca, cb, a, b, resamples)
    if _too_few(n, confidence):
        method = f"{n} test examples: even all {n} going one way would not be beyond noise"
    return Difference(
        a, b, float(d.mean()), max(-1.0, float(min(low, exact_low))), min(1.0, float(max(high, exact_high))),
        method, examples=n, confidence=confidence, judged=not _too_few(n, confidence), redo=redo,
    )  # fmt: skip


def _t_interval(estimate: float, terms: Sequence[tuple[float, int]], confidence: float) -> tuple[float, float]:
    """estimate +- t * sqrt(sum of variances), Welch-Satterthwaite degrees of freedom over the
    terms (variance of the mean, its degrees of freedom); clipped to +-100 points."""
    from scipy import stats

    terms = [(v, df) for v, df in terms if df > 0]
    total = sum(v for v, _ in terms)
    dof = total**2 / sum(v * v / df for v, df in terms) if total > 0 else 1.0
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, dof) * np.sqrt(total))
    return max(-1.0, estimate - half), min(1.0, estimate + half)


def replicated_difference(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    a: str = "A",
    b: str = "B",
    paired: bool = True,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
) -> Difference:
    """Mean accuracy of `a` minus `b` over training draws scored on the same examples.

    `correct_a` is (k_a seeds, n examples) of right/wrong answers, `correct_b` (k_b, n) on the
    same examples in the same order; `paired`: row i of both trained on the same draw (seed).
    A t interval whose variance counts both sources of noise, with Welch's degrees of freedom:
    - the seeds': Var(acc_a - acc_b per seed)/k when paired, else Var(acc_a)/k_a + Var(acc_b)/k_b;
    - the examples': Var(per-example difference)/n, where an example's difference is a's mean
      answer over its seeds minus b's (the same examples for both arms).
    It never claims more than the examples alone allow: it covers the bootstrap of the mean
    per-example difference, resampling examples as `paired_difference` does for one seed, so k
    seeds that agree exactly give one seed's interval.
    Widened to the exact sign test on the examples that split the arms (on the seeds' mean) where
    every seed splits the same ones, or fewer than `FEW_SPLIT` are split; otherwise the sign test
    would count a split of one seed in three as a whole one. One seed each: `paired_difference`.
    """
    A, B = np.atleast_2d(np.asarray(correct_a, dtype=float)), np.atleast_2d(np.asarray(correct_b, dtype=float))
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1] or A.shape[1] == 0:
        raise ValueError(f"need (seeds, examples) answers on the same examples, got {A.shape} and {B.shape}")
    (ka, n), kb = A.shape, len(B)
    if ka == kb == 1:
        return paired_difference(A[0].astype(bool), B[0].astype(bool), a, b, confidence=confidence)
    paired = paired and ka == kb
    acc_a, acc_b = A.mean(1), B.mean(1)
    estimate = float(acc_a.mean() - acc_b.mean())
    if paired:
        terms = [(float(np.var(acc_a - acc_b, ddof=1)) / ka, ka - 1)]
    else:
        terms = [(float(np.var(acc, ddof=1)) / len(acc), len(acc) - 1) for acc in (acc_a, acc_b) if len(acc) > 1]
    per_example = A.mean(0) - B.mean(0)
    if np.ptp(per_example) == 0:  # no example tells them apart: count one split each way, never a zero width
        per_example = np.r_[per_example, 1.0, -1.0]
    terms.append((float(np.var(per_example, ddof=1)) / len(per_example), len(per_example) - 1))
    low, high = _t_interval(estimate, terms, confidence)
    examples_low, examples_high = _bootstrap(per_example, resamples, confidence)
    low, high = min(low, examples_low), max(high, examples_high)
    wins, losses = int((per_example[:n] > 0).sum()), int((per_example[:n] < 0).sum())
    whole = bool(np.all(per_example[:n] == np.round(per_example[:n])))  # every seed splits the same examples
    if whole or wins + losses < FEW_SPLIT:  # the sign test applies exactly, or few split: the rest is too sure
        exact_low, exact_high = _sign_interval(wins, losses, n, confidence)
        low, high = min(low, exact_low), max(high, exact_high)
    draws = f"{ka} training draws each, paired by seed," if paired else f"{ka} and {kb} training draws, unpaired,"
    method = f"{draws} on {n:,} shared examples: t interval counting the seeds' and the examples' noise"
    judged = not _too_few(n, confidence)
    if not judged:
        method = f"{n} test examples: even all {n} going one way would not be beyond noise"
    return Difference(
        a, b, estimate, low, high, method, examples=n, seeds=min(ka, kb),
        confidence=confidence, judged=judged, redo=partial(replicated_difference, A, B, a, b, paired),
    )  # fmt: skip


def accuracy_interval(correct: Sequence[bool] | np.ndarray) -> tuple[float, float, float]:
    """One model's accuracy on its test examples with a 95% Wilson score interval: (accuracy, low,
    high). Unlike a bootstrap it does not shrink to a point at 0% or 100% (12 of 12 right: 76% to 100%)."""
    c = np.asarray(correct, dtype=bool)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"need the correctness on the test examples, got shape {c.shape}")
    from scipy import stats

    n, p = len(c), float(c.mean())
    z = float(stats.norm.ppf(1 - (1 - CONFIDENCE) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, float(max(0.0, centre - half)), float(min(1.0, centre + half))


def seed_difference(
    accuracy_a: Mapping[int, float] | pd.Series,
    accuracy_b: Mapping[int, float] | pd.Series,
    a: str = "A",
    b: str = "B",
    examples: int | None = None,
    confidence: float = CONFIDENCE,
) -> Difference:
    """Mean accuracy of `a` minus `b` over seeds ({seed: accuracy} each), when only accuracies are
    at hand (with each example's answers, use `replicated_difference`: narrower and exact).

    The seeds' noise: paired by seed (the difference per seed) where both arms ran the same seeds,
    unpaired (Welch) otherwise. The examples' noise, where `examples` (how many each seed was
    scored on, the same ones) is given: bounded by the most two accuracies allow, Var(per-example
    difference) <= min(p_a, 1 - p_b) + min(1 - p_a, p_b) - (p_a - p_b)^2. Without `examples`, the
    interval counts the seeds alone; if they agree exactly, there is too little to judge. Needs at
    least two seeds per arm; with one, judge the examples instead (`paired_difference`).
    """
    sa, sb = pd.Series(dict(accuracy_a), dtype=float), pd.Series(dict(accuracy_b), dtype=float)
    if min(len(sa), len(sb)) < 2:
        raise ValueError("an interval over seeds needs at least two seeds per arm; with one, use paired_difference")
    if set(sa.index) == set(sb.index):
        d = sa - sb.loc[sa.index]
        terms = [(float(d.var(ddof=1)) / len(d), len(d) - 1)]
        estimate, method = float(d.mean()), f"paired by seed over {len(d)} seeds"
    else:
        terms = [(float(s.var(ddof=1)) / len(s), len(s) - 1) for s in (sa, sb)]
        estimate, method = float(sa.mean() - sb.mean()), f"unpaired (Welch), {len(sa)} and {len(sb)} seeds"
    pa, pb = float(sa.mean()), float(sb.mean())
    if examples:
        bound = max(min(pa, 1 - pb) + min(1 - pa, pb) - (pa - pb) ** 2, 1 / examples)
        terms.append((bound / examples, examples - 1))
        method += f", and at most the noise {examples:,} shared examples can hold (no per-example answers)"
    else:
        method += "; the examples' own noise not counted"
    low, high = _t_interval(estimate, terms, confidence)
    judged = high - low > 1e-6  # a width of rounding errors is none
    if not judged:
        method = "the seeds agree exactly and the number of test examples is not known"
    return Difference(
        a, b, estimate, low, high, f"t interval, {method}", examples=examples, seeds=min(len(sa), len(sb)),
        confidence=confidence, judged=judged, redo=partial(seed_difference, sa, sb, a, b, examples),
    )  # fmt: skip


def _answers(rows: pd.DataFrame, column: str, seed: str) -> np.ndarray | None:
    """(seeds, examples) right/wrong answers from a column of "0"/"1" strings, one row per seed;
    None where the column is missing, a row lacks it, or a seed has several rows."""
    if column not in rows or rows[seed].duplicated().any():
        return None
    texts = rows.sort_values(seed)[column].tolist()
    if not texts or not all(isinstance(t, str) and t for t in texts) or len({len(t) for t in texts}) != 1:
        return None
    return np.array([np.frombuffer(t.encode(), dtype=np.uint8) - ord("0") for t in texts], dtype=bool)


def difference_in(
    table: pd.DataFrame,
    a,
    b,
    by: str = "arm",
    value: str = "test_accuracy",
    seed: str = "seed",
    examples: int | None = None,
    confidence: float = CONFIDENCE,
) -> Difference:
    """The difference of the rows of a tidy table (one per setting and seed, as `sweep` gives)
    where `by` is `a` against those where it is `b`: e.g. `difference_in(table, "finetune", "scratch")`.

    Where the rows carry each example's answers (`test_correct` for `test_accuracy`, `val_correct`
    for `val_accuracy`), `replicated_difference` (one seed each: `paired_difference`); otherwise
    `seed_difference` over the per-seed means, with `examples` if given.
    """
    rows = {s: table[table[by] == s] for s in (a, b)}
    for s, part in rows.items():
        if part.empty or part[value].isna().all():
            raise ValueError(f"no rows with {by} == {s!r}; the table has {sorted(table[by].unique())}")
    column = value.removesuffix("_accuracy") + "_correct" if value.endswith("_accuracy") else None
    answers = {s: _answers(part, column, seed) for s, part in rows.items()} if column else {}
    if answers and all(x is not None for x in answers.values()) and answers[a].shape[1] == answers[b].shape[1]:
        same = sorted(rows[a][seed]) == sorted(rows[b][seed])
        return replicated_difference(answers[a], answers[b], str(a), str(b), paired=same, confidence=confidence)
    pick = {s: part.groupby(seed)[value].mean() for s, part in rows.items()}
    return seed_difference(pick[a], pick[b], str(a), str(b), examples=examples, confidence=confidence)


def holm(differences: Sequence[Difference], confidence: float = CONFIDENCE) -> list[Difference]:
    """A family of verdicts shown together, adjusted by Holm's step-down rule (in the same order).

    The clearest difference (largest estimate for its interval's width) is judged at confidence
    1 - (1 - `confidence`)/m, the next at 1 - (1 - `confidence`)/(m - 1), and so on; once one is
    within noise, every later one keeps that level. Each interval is recomputed at its level, so
    a tie is still an interval that covers zero.
    """
    m, alpha = len(differences), 1 - confidence
    clearness = [abs(d.estimate) / max(d.high - d.low, 1e-12) if d.judged else -1.0 for d in differences]
    adjusted: list[Difference | None] = [None] * m
    stopped = None
    for j, i in enumerate(sorted(range(m), key=lambda i: -clearness[i])):
        level = stopped if stopped is not None else 1 - alpha / (m - j)
        d = differences[i].at(level) if m > 1 else differences[i]
        if stopped is None and not d.beyond_noise:
            stopped = level
        adjusted[i] = replace(d, method=f"{d.method}; Holm-adjusted, one of {m} shown together") if m > 1 else d
    return adjusted


def spread(values: Sequence[float] | np.ndarray | pd.Series) -> float:
    """The spread of accuracies over seeds: their standard deviation (n - 1 in the denominator)."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def best_within_noise(
    table: pd.DataFrame, by: str, value: str = "val_accuracy", seed: str = "seed", examples: int | None = None
) -> pd.DataFrame:
    """Which setting of `by` is best on `value`, and which others are within noise of it.

    `table` has a row per setting and seed. The best is the highest mean; every other setting is
    judged against it (`difference_in`: paired by seed, counting the examples' noise), the family
    adjusted together (`holm`). Choose on the validation split (`value="val_accuracy"`) and
    report the test split once.

    Returns:
        A row per setting, best first: mean, spread, difference from the best with its interval
        (`confidence`: its Holm-adjusted level), and `ties_best` (True for the best and for every
        setting within noise of it).
    """
    per = table.pivot_table(index=seed, columns=by, values=value)
    means = per.mean().sort_values(ascending=False)
    best = means.index[0]
    others = list(means.index[1:])
    judged = holm([difference_in(table, s, best, by=by, value=value, seed=seed, examples=examples) for s in others])
    rows = [{by: best, "mean": means[best], "spread": spread(per[best].dropna()), "difference": 0.0,
             "low": 0.0, "high": 0.0, "confidence": np.nan, "ties_best": True}]  # fmt: skip
    for setting, d in zip(others, judged):
        rows.append(
            {by: setting, "mean": means[setting], "spread": spread(per[setting].dropna()), "difference": d.estimate,
             "low": d.low, "high": d.high, "confidence": d.confidence, "ties_best": not d.beyond_noise}
        )  # fmt: skip
    return pd.DataFrame(rows)

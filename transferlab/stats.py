"""One yardstick for every comparison: a difference in accuracy with its 95% interval.

Everything in the kit that says "beats", "ties", "within noise" or "best" asks this module.

- One seed, one test split: the two arms answered the *same* test examples, so the difference is
  judged paired, example by example (`paired_difference`: a bootstrap over the test examples of
  the difference in correctness). An unpaired standard error ignores that pairing and overstates
  the noise when the arms agree on most examples, as they do.
- Several seeds: where the arms share each seed (the same draw of training images), the
  difference is taken seed by seed and the interval is that of the mean difference (a t
  interval, `seed_difference`). Only arms that share no seeds are compared unpaired (Welch).
- The **spread** of a set of accuracies is their standard deviation (`spread`): one word, one
  definition, everywhere.

A difference whose interval covers zero is a tie: "A and B are within noise of each other".

    >>> d = paired_difference(correct_a, correct_b, "finetune", "probe")
    >>> d.sentence()   # 'finetune and probe are within noise of each other (difference -1.0 points, ...)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "CONFIDENCE",
    "Difference",
    "accuracy_interval",
    "best_within_noise",
    "difference_in",
    "paired_difference",
    "seed_difference",
    "spread",
]

CONFIDENCE = 0.95
RESAMPLES = 4000  # bootstrap resamples: the interval's ends move by < 0.1 points between seeds of the bootstrap


@dataclass(frozen=True)
class Difference:
    """Accuracy of arm `a` minus arm `b` (fractions), with its 95% interval and how it was judged."""

    a: str
    b: str
    estimate: float
    low: float
    high: float
    method: str

    @property
    def beyond_noise(self) -> bool:
        """Whether the interval excludes zero: only then does one arm beat the other."""
        return self.low > 0 or self.high < 0

    @property
    def winner(self) -> str | None:
        """The arm that beats the other beyond noise, or None for a tie."""
        if not self.beyond_noise:
            return None
        return self.a if self.estimate > 0 else self.b

    def interval(self) -> str:
        """E.g. "95% interval +1.2 to +4.0 points"."""
        return f"{CONFIDENCE:.0%} interval {self.low * 100:+.1f} to {self.high * 100:+.1f} points"

    def sentence(self) -> str:
        """ "A beats B by X points (95% interval L to U)", or "A and B are within noise of each
        other (difference X points, 95% interval L to U)"; always from the interval."""
        if self.winner is None:
            return (
                f"{self.a} and {self.b} are within noise of each other "
                f"(difference {self.estimate * 100:+.1f} points, {self.interval()})"
            )
        flip = -1 if self.winner == self.b else 1
        loser = self.b if flip == 1 else self.a
        low, high = sorted((self.low * flip, self.high * flip))
        return (
            f"{self.winner} beats {loser} by {self.estimate * flip * 100:.1f} points "
            f"({CONFIDENCE:.0%} interval {low * 100:+.1f} to {high * 100:+.1f})"
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
            "method": self.method,
        }


def paired_difference(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    a: str = "A",
    b: str = "B",
    resamples: int = RESAMPLES,
) -> Difference:
    """Accuracy of `a` minus `b` on the same test examples, with a paired bootstrap interval.

    Each example contributes d = correct_a - correct_b (-1, 0 or +1); resampling examples with
    replacement is resampling the counts of those three values (a multinomial draw), so the
    bootstrap is exact and takes microseconds. Seeded: the same inputs give the same interval.
    """
    ca, cb = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if ca.shape != cb.shape or ca.ndim != 1 or len(ca) == 0:
        raise ValueError(f"need the correctness of both arms on the same test examples, got {ca.shape} and {cb.shape}")
    n = len(ca)
    d = ca.astype(int) - cb.astype(int)
    counts = np.array([(d == -1).sum(), (d == 0).sum(), (d == 1).sum()])
    draws = np.random.default_rng(0).multinomial(n, counts / n, size=resamples)
    means = (draws[:, 2] - draws[:, 0]) / n
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Difference(a, b, float(d.mean()), float(low), float(high), f"paired bootstrap over {n:,} test examples")


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
) -> Difference:
    """Mean accuracy of `a` minus `b` over seeds ({seed: accuracy} each), with a t interval.

    Paired by seed (the difference per seed, then its mean) where both arms ran the same seeds;
    unpaired (Welch) otherwise. Needs at least two seeds per arm; with one seed, judge the test
    examples instead (`paired_difference`).
    """
    from scipy import stats

    sa, sb = pd.Series(dict(accuracy_a), dtype=float), pd.Series(dict(accuracy_b), dtype=float)
    if min(len(sa), len(sb)) < 2:
        raise ValueError("an interval over seeds needs at least two seeds per arm; with one, use paired_difference")
    q = 1 - (1 - CONFIDENCE) / 2
    if set(sa.index) == set(sb.index):
        d = sa - sb.loc[sa.index]
        half = stats.t.ppf(q, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        estimate, method = float(d.mean()), f"paired by seed, t interval over {len(d)} seeds"
    else:
        va, vb = sa.var(ddof=1) / len(sa), sb.var(ddof=1) / len(sb)
        se = np.sqrt(va + vb)
        dof = se**4 / (va**2 / (len(sa) - 1) + vb**2 / (len(sb) - 1)) if se > 0 else 1.0
        half = stats.t.ppf(q, dof) * se
        estimate, method = float(sa.mean() - sb.mean()), f"unpaired (Welch), {len(sa)} and {len(sb)} seeds"
    return Difference(a, b, estimate, float(estimate - half), float(estimate + half), method)


def difference_in(
    table: pd.DataFrame, a, b, by: str = "arm", value: str = "test_accuracy", seed: str = "seed"
) -> Difference:
    """`seed_difference` of the rows of a tidy table (one per setting and seed, as `sweep` gives)
    where `by` is `a` against those where it is `b`: e.g. `difference_in(table, "finetune", "scratch")`."""
    pick = {s: table[table[by] == s].groupby(seed)[value].mean() for s in (a, b)}
    for s, series in pick.items():
        if series.empty:
            raise ValueError(f"no rows with {by} == {s!r}; the table has {sorted(table[by].unique())}")
    return seed_difference(pick[a], pick[b], str(a), str(b))


def spread(values: Sequence[float] | np.ndarray | pd.Series) -> float:
    """The spread of accuracies over seeds: their standard deviation (n - 1 in the denominator)."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def best_within_noise(table: pd.DataFrame, by: str, value: str = "val_accuracy", seed: str = "seed") -> pd.DataFrame:
    """Which setting of `by` is best on `value`, and which others are within noise of it.

    `table` has a row per setting and seed. The best is the highest mean; every other setting is
    judged against it paired by seed (`seed_difference`). Choose on the validation split
    (`value="val_accuracy"`) and report the test split once.

    Returns:
        A row per setting, best first: mean, spread, difference from the best with its interval,
        and `ties_best` (True for the best and for every setting within noise of it).
    """
    per = table.pivot_table(index=seed, columns=by, values=value)
    means = per.mean().sort_values(ascending=False)
    best = means.index[0]
    rows = []
    for setting in means.index:
        row = {by: setting, "mean": means[setting], "spread": spread(per[setting].dropna())}
        if setting == best:
            row |= {"difference": 0.0, "low": 0.0, "high": 0.0, "ties_best": True}
        else:
            d = seed_difference(per[setting].dropna(), per[best].dropna(), str(setting), str(best))
            row |= {"difference": d.estimate, "low": d.low, "high": d.high, "ties_best": not d.beyond_noise}
        rows.append(row)
    return pd.DataFrame(rows)

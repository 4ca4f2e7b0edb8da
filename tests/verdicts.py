"""Verdicts read back: a sentence of the yardstick ("A beats B by X points (95% interval L to U)" or
"A and B are within noise of each other (difference X points, 95% interval L to U points)") checked
against the arms' right and wrong answers on the test examples, computed by the caller from the
predictions and the labels, not by the engine's own `correct`.

The interval is checked against the textbook normal approximation of a paired difference (the
oracle of tests/test_stats.py), so a verdict that named the wrong arm, the wrong number, another
pair's interval or an unpaired one fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

NUMBER = r"[+-]?\d+\.\d\d?"  # one decimal, or two where one would show a non-zero end as 0.0
LEVEL = r"\d+(?:\.\d+)?"  # 95, or a family's Holm-adjusted level such as 98.3


def sentences(text: str, arms: Iterable[str]) -> list[tuple[str, str, dict[str, float]]]:
    """Every yardstick sentence in `text` about two of `arms`: (a, b, numbers), in order, where a
    is the winner or the first arm named and `numbers` has `difference` (a minus b, in points),
    `low`, `high` (its interval, in points), `beats` (1.0 or 0.0) and `confidence` (its level)."""
    names = "|".join(re.escape(a) for a in sorted(arms, key=len, reverse=True))
    pattern = re.compile(
        rf"(?P<w>{names}) beats (?P<l>{names}) by (?P<by>{NUMBER}) points "
        rf"\((?P<wc>{LEVEL})% interval (?P<wl>{NUMBER}) to (?P<wh>{NUMBER})\)"
        rf"|(?P<a>{names}) and (?P<b>{names}) are within noise of each other "
        rf"\(difference (?P<d>{NUMBER}) points, (?P<tc>{LEVEL})% interval (?P<tl>{NUMBER}) to (?P<th>{NUMBER}) points\)"
    )
    found = []
    for m in pattern.finditer(text):
        if m["w"]:
            numbers = {"difference": float(m["by"]), "low": float(m["wl"]), "high": float(m["wh"]), "beats": 1.0,
                       "confidence": float(m["wc"]) / 100}  # fmt: skip
            found.append((m["w"], m["l"], numbers))
        else:
            numbers = {"difference": float(m["d"]), "low": float(m["tl"]), "high": float(m["th"]), "beats": 0.0,
                       "confidence": float(m["tc"]) / 100}  # fmt: skip
            found.append((m["a"], m["b"], numbers))
    return found


def check(a: str, b: str, numbers: Mapping[str, float], correct: Mapping[str, np.ndarray]) -> None:
    """Assert that the sentence's arms, difference and interval are those of the answers `correct`
    ({arm: right or wrong per test example, the same examples for every arm})."""
    ca, cb = (np.asarray(correct[arm], dtype=bool) for arm in (a, b))
    n = len(ca)
    d = ca.astype(float) - cb.astype(float)
    estimate = d.mean() * 100
    from scipy.stats import norm

    z = norm.ppf(1 - (1 - numbers.get("confidence", 0.95)) / 2)
    half = z * d.std(ddof=0) / np.sqrt(n) * 100  # the normal approximation at the sentence's level, in points
    said = f"{a} vs {b}: {dict(numbers)}, answers say {estimate:+.2f} +/- {half:.2f}"
    # The bootstrap's ends sit on a lattice of 1/n and carry its resampling noise: at 100 examples they
    # may stand a point or so from the normal approximation, at 2 000 a quarter of a point.
    tolerance = 0.2 + 150 / n
    assert abs(numbers["difference"] - estimate) <= 0.051, said
    assert abs(numbers["low"] - (estimate - half)) <= tolerance, said
    assert abs(numbers["high"] - (estimate + half)) <= tolerance, said
    if numbers["beats"]:
        assert estimate > 0 and numbers["low"] >= 0, f"{a} does not beat {b}: {said}"  # +0.0 once rounded
    else:
        assert numbers["low"] <= 0 <= numbers["high"], f"a tie whose interval misses zero: {said}"


def check_all(text: str, correct: Mapping[str, np.ndarray]) -> list[tuple[str, str]]:
    """`check` every yardstick sentence in `text`; returns the pairs it names, (winner or first, other)."""
    found = sentences(text, correct)
    for a, b, numbers in found:
        check(a, b, numbers, correct)
    return [(a, b) for a, b, _ in found]

"""Exercises with checks: a learner's own results against an exercise's question, answered with
what holds, what is missing and a hint, not only pass or fail.

    >>> mine = [result, tl.compare(replace(LESSON, per_class=100), arms=arms)]
    >>> tl.exercises.beats_beyond_noise(mine, "finetune", "scratch")
    Done. n=10: finetune beats scratch by 31.2 points (95% interval +28.1 to +34.4) ...

Every "beats" and "within noise" here is the stats module's (`transferlab.stats`), as in the
lessons' text and the dashboard. A check never raises on a learner's settings: what it cannot
judge, it says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..stats import Difference, accuracy_interval, best_within_noise

__all__ = [
    "Check",
    "above_chance",
    "beats_beyond_noise",
    "fair_chance",
    "shallowest_within_noise",
    "verdict",
    "within_noise",
]
TIE = "tie"  # the answer that says neither arm wins beyond noise


@dataclass(frozen=True)
class Check:
    """The answer to an exercise: `done`, what holds in the results (`right`), what is still
    missing, and where to look next."""

    done: bool
    right: str
    missing: str = ""
    hint: str = ""

    def __str__(self) -> str:
        if self.done:
            return f"Done. {self.right}"
        return f"Not yet. {self.right} Missing: {self.missing} Hint: {self.hint}"

    def _repr_markdown_(self) -> str:  # Jupyter shows a cell's last Check as this
        if self.done:
            return f"**Done.** {self.right}"
        return f"**Not yet.** {self.right}\n\n**Missing:** {self.missing}\n\n**Hint:** {self.hint}"


def _setting(result) -> str:
    c = result.config
    budget = f"until it stops improving (patience {c.patience})" if c.patience else f"{c.steps or 'default'} steps"
    return f"n={c.per_class or 'all'}, k={c.freeze_depth}, seed {c.seed}, {budget}"


def _pairs(results: Sequence, a: str, b: str) -> tuple[list, list[str]]:
    """(result, difference) for each result that has both arms; what was left out and why."""
    judged, skipped = [], []
    for r in results:
        if {a, b} <= set(r.table.arm) and not r.stopped:
            judged.append((r, r.difference(a, b)))
        else:
            skipped.append(f"{_setting(r)} (no {a} and {b} to compare, or stopped)")
    return judged, skipped


def _settings_check(said: str, needs: Mapping[str, tuple] | None) -> Check | None:
    """Not yet, if the learner's run lacks a setting the exercise asks for: `needs` is
    {"per_class": (yours, asked)}. None when every setting is the asked one."""
    unmet = [
        f"{name} = {asked!r} (yours: {yours!r})" for name, (yours, asked) in (needs or {}).items() if yours != asked
    ]
    if not unmet:
        return None
    return Check(
        False, said, f"a run with the exercise's settings: {'; '.join(unmet)}.", "change them, run again, then check."
    )


def beats_beyond_noise(results: Sequence, a: str = "finetune", b: str = "scratch") -> Check:
    """Exercise: find settings at which `a` beats `b` beyond noise (its interval above zero)."""
    judged, skipped = _pairs(results, a, b)
    lines = [f"{_setting(r)}: {d.sentence()}." for r, d in judged] + [f"Left out: {s}." for s in skipped]
    said = " ".join(lines) or "No results given."
    if any(d.winner == a for _, d in judged):
        return Check(True, said)
    return Check(
        False,
        said,
        f"none of your {len(judged)} comparison(s) has {a} ahead of {b} beyond noise.",
        "an interval narrows with more test images and widens with fewer; the gap itself moves with the "
        "images per class and the freeze depth. Change one setting at a time and add each result to the list.",
    )


def within_noise(results: Sequence, a: str, b: str) -> Check:
    """Exercise: find settings at which `a` and `b` are within noise of each other (a tie)."""
    judged, skipped = _pairs(results, a, b)
    lines = [f"{_setting(r)}: {d.sentence()}." for r, d in judged] + [f"Left out: {s}." for s in skipped]
    said = " ".join(lines) or "No results given."
    if any(d.winner is None for _, d in judged):
        return Check(True, said)
    return Check(
        False,
        said,
        f"in each of your {len(judged)} comparison(s) one of {a} and {b} wins beyond noise.",
        f"look for settings where what separates {a} from {b} matters least (more images per class, say).",
    )


def fair_chance(
    results: Sequence, arm: str | Sequence[str] = "scratch", needs: Mapping[str, tuple] | None = None
) -> Check:
    """Exercise: give `arm` a fair chance: a result in which it had stopped improving by its last
    step. `arm` may be several names (the same network trained several ways: "scratch", "scratch, 10x steps")."""
    names = [arm] if isinstance(arm, str) else list(arm)
    said_arm = " or ".join(names)
    if not results:
        return Check(False, "No results given.", f"a comparison with {said_arm}.", "run one and put it in the list.")
    lines, done = [], False
    for r in results:
        present = [a for a in names if a in set(r.table.arm)]
        if not present:
            lines.append(f"{_setting(r)}: no {said_arm} arm.")
        for a in present:
            if a in r.improving():
                lines.append(f"{_setting(r)}: {a} was still improving when its budget ran out.")
            else:
                lines.append(f"{_setting(r)}: {a} had stopped improving; its accuracy is a fair one.")
                done = True
    if unmet := _settings_check(" ".join(lines), needs):
        return unmet
    if done:
        return Check(True, " ".join(lines))
    return Check(
        False,
        " ".join(lines),
        f"a run in which {said_arm} had stopped improving before its budget ended.",
        "train until it stops improving (patience=10), or give it more steps; then judge the gap again.",
    )


def shallowest_within_noise(
    table: pd.DataFrame, answer: int | None = None, by: str = "freeze_depth", needs: Mapping[str, tuple] | None = None
) -> Check:
    """Exercise: find the shallowest `by` (freeze depth) within noise of the best, on validation
    accuracy over seeds (`best_within_noise`); `answer` is the learner's, if they have one."""
    if table.empty or table.get("seed", pd.Series(dtype=int)).nunique() < 2:
        return Check(
            False,
            "An interval over seeds needs at least two seeds per setting.",
            "results for two or more seeds.",
            "run the sweep with seeds=(0, 1) or more.",
        )
    ranked = best_within_noise(table, by=by)
    tied = sorted(ranked.loc[ranked.ties_best, by])
    right = (
        f"The best on validation is {by}={ranked[by].iloc[0]}; within noise of it: {', '.join(map(str, tied))}. "
        f"The shallowest of those is {by}={tied[0]}."
    )
    if unmet := _settings_check(right, needs):
        return unmet
    if answer is None:
        return Check(False, right, "your answer (answer=...).", "read the list above, then say which you choose.")
    if answer == tied[0]:
        return Check(True, right)
    why = "within noise of the best, but not the shallowest" if answer in tied else "not within noise of the best"
    return Check(False, right, f"{by}={answer} is {why}.", f"the list is in order of accuracy: read it by {by}.")


def verdict(
    difference: Difference | None, answer: str | None, needs: Mapping[str, tuple] | None = None, how: str = ""
) -> Check:
    """Exercise: "does `a` beat `b`, or are they within noise?" The learner's `answer` (the name of
    the arm they think wins beyond noise, or "tie") against the stats module's verdict on their
    own `difference`. `needs`: the settings the exercise asks for, {"name": (yours, asked)}; `how`:
    how to compute the difference, said while there is none."""
    if difference is None:
        return Check(False, "No difference given yet.", "the difference the exercise asks for.", how or "compute it.")
    said = f"{difference.sentence()}."
    if unmet := _settings_check(said, needs):
        return unmet
    truth = difference.winner or TIE
    if answer is None:
        return Check(
            False,
            said,
            f'your answer (answer="{difference.a}", "{difference.b}" or "{TIE}").',
            "read the interval: does it cover zero?",
        )
    if answer == truth:
        return Check(True, f"{said} Your answer, {answer}, is what the interval says.")
    if truth == TIE:
        hint = "the interval covers zero: the difference could be noise, so neither wins."
    elif answer == TIE:
        hint = f"the interval lies wholly on one side of zero: {truth} wins beyond noise."
    else:
        hint = f"read the sign: the difference is {difference.a} minus {difference.b}."
    return Check(False, said, f'answer "{truth}", not "{answer}".', hint)


def above_chance(
    correct: Sequence[bool] | np.ndarray, num_classes: int, name: str, needs: Mapping[str, tuple] | None = None
) -> Check:
    """Exercise: "is `name` better than guessing?" Its accuracy's 95% interval (Wilson, from the
    stats module) against chance, 1 / `num_classes`."""
    accuracy, low, high = accuracy_interval(correct)
    chance = 1 / num_classes
    said = (
        f"{name}: {accuracy:.1%} on {len(correct)} test examples (95% interval {low:.1%} to {high:.1%}); "
        f"chance is {chance:.0%}."
    )
    if unmet := _settings_check(said, needs):
        return unmet
    if low > chance:
        return Check(True, f"{said} The whole interval is above chance: {name} has learned something.")
    return Check(
        False,
        f"{said} The interval reaches down to chance.",
        f"a run of {name} whose interval lies above chance.",
        "more training (more steps, or until it stops improving), a learning rate of its own, or more images.",
    )

"""Predict, then run: a learner says which arm will win and by about how much before the comparison
trains, and is told afterwards how that held up.

A learner who commits to a prediction before a demonstration learns more from it than one who only
watches. So the dashboard asks before Run (skipping is allowed), the class board shows the room's
guesses next to the result, and the command line takes one too:

    >>> guess = Prediction.parse("finetune+20")     # finetune beats scratch by about 20 points
    >>> guess.against(result)                       # after `compare` (or a stored `Outcome`)
    'You predicted finetune by about 20 points. It came out: finetune beats scratch by 31.2 points
     (95% interval ...). Right winner; the gap was 11 points larger than you thought.'

"tie" predicts that the two are within noise of each other. Who won is judged as everywhere in
the kit (`transferlab.stats`): a difference whose interval covers zero is a tie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["TIE", "Prediction"]

TIE = "tie"
_FORM = re.compile(r"^\s*(?P<arm>[a-z_]+)\s*(?:(?P<sign>[+-])\s*(?P<points>\d+(?:\.\d+)?))?\s*$")


@dataclass(frozen=True)
class Prediction:
    """`winner` (an arm, or "tie") and `points`: by about how many points it wins (None: not said).
    Made for a comparison of `a` against `b` (finetune against scratch unless said)."""

    winner: str
    points: float | None = None
    a: str = "finetune"
    b: str = "scratch"

    @classmethod
    def parse(cls, text: str, a: str = "finetune", b: str = "scratch") -> Prediction:
        """ "finetune+20", "scratch+5", "finetune" (no size) or "tie"."""
        m = _FORM.match(text.lower())
        if not m or m["arm"] not in (a, b, TIE) or (m["arm"] == TIE and m["points"]) or m["sign"] == "-":
            raise ConfigError(
                f"cannot read the prediction {text!r}: write the arm you expect to win and by about how many "
                f"points ({a}+20, {b}+5), or '{TIE}' for within noise"
            )
        return cls(m["arm"], float(m["points"]) if m["points"] else None, a, b)

    @property
    def gap(self) -> float | None:
        """The predicted accuracy of `a` minus `b`, in points (0 for a tie; None when not said)."""
        if self.winner == TIE:
            return 0.0
        if self.points is None:
            return None
        return self.points if self.winner == self.a else -self.points

    def __str__(self) -> str:
        if self.winner == TIE:
            return f"{self.a} and {self.b} within noise of each other"
        return self.winner + (f" by about {self.points:g} points" if self.points is not None else "")

    def against(self, result) -> str:
        """What was predicted, what happened (the verdict of `result.difference(a, b)`), and how it held up."""
        d = result.difference(self.a, self.b)
        happened = d.winner or TIE
        said = f"You predicted {self}. It came out: {d.sentence()}."
        if happened != self.winner:
            return f"{said} Not what you predicted: what did you expect that did not happen?"
        if self.gap is None or self.winner == TIE:
            return f"{said} As you predicted."
        off = abs(d.estimate * 100) - self.points
        size = (
            "about as large as you thought"
            if abs(off) < 5
            else f"{abs(off):.0f} points {'larger' if off > 0 else 'smaller'} than you thought"
        )
        return f"{said} Right winner; the gap was {size}."

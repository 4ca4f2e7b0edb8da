"""Claims that replicate: each lesson's primary comparison, run again on seeds the lesson never used.

A lesson's verdict comes from its own draws of training images (often one). Run on other draws,
does it hold? `replicate` trains both sides of a claim on the lesson's seeds and on new ones, and
judges each set with the one yardstick (`stats.difference_in`: over seeds and test images):

    >>> table = replicate_all(seeds=(10, 11, 12))
    >>> print(markdown(table))     # claim, the lesson's interval, the replication's, holds or not

`transferlab replicate` prints the table and can write it to a file (docs/replication.md). It
trains for minutes, so it is not part of `make test`; its tests run it on the tiny test backbone.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import pandas as pd

from ..stats import Difference, difference_in, holm
from ..training.comparison import compare
from ..training.config import Arm, ExperimentConfig

__all__ = ["CLAIMS", "Claim", "markdown", "over_seeds", "replicate", "replicate_all"]


@dataclass(frozen=True)
class Claim:
    """One lesson's primary comparison: side `a` against side `b`, each an arm trained under a config
    (the two configs differ where the claim is about a setting, e.g. BatchNorm statistics)."""

    lesson: str
    question: str
    a: tuple[str, ExperimentConfig, str | Arm]  # (name in the verdict, config, arm)
    b: tuple[str, ExperimentConfig, str | Arm]
    seeds: tuple[int, ...]  # the lesson's own draws

    def table(self, seeds: Sequence[int]) -> pd.DataFrame:
        """Both sides trained on each seed: a row per side and seed, with each test image's answer."""
        rows = []
        for seed in seeds:
            for name, config, arm in (self.a, self.b):
                arm_name = arm if isinstance(arm, str) else arm.name
                row = compare(replace(config, seed=seed), [arm]).table.set_index("arm").loc[arm_name]
                rows.append({**row.to_dict(), "side": name, "seed": seed})
        return pd.DataFrame(rows)

    def judge(self, seeds: Sequence[int]) -> Difference:
        return difference_in(self.table(seeds), self.a[0], self.b[0], by="side")


def over_seeds(results: Sequence) -> list[Difference]:
    """The best arm (by mean test accuracy) against each other arm, over the seeds of `results`
    (comparisons of the same arms, one per seed): a verdict on the methods, counting seeds and test
    images, the differences adjusted together (Holm)."""
    table = pd.concat([r.table for r in results], ignore_index=True)
    order = table.groupby("arm").test_accuracy.mean().sort_values(ascending=False).index
    return holm([difference_in(table, order[0], other) for other in order[1:]])


def replicate(claim: Claim, seeds: Sequence[int]) -> dict:
    """The claim judged on the lesson's seeds and on `seeds`; it holds when both name the same
    winner (or both find a tie)."""
    if set(seeds) & set(claim.seeds):
        raise ValueError(f"replicate on seeds the lesson did not use; it used {claim.seeds}")
    original, again = claim.judge(claim.seeds), claim.judge(seeds)
    return {
        "lesson": claim.lesson,
        "question": claim.question,
        "lesson seeds": ", ".join(map(str, claim.seeds)),
        "lesson verdict": original.sentence(),
        "new seeds": ", ".join(map(str, seeds)),
        "replication": again.sentence(),
        "holds": original.winner == again.winner,
    }


def replicate_all(claims: Sequence[Claim] | None = None, seeds: Sequence[int] = (10, 11, 12)) -> pd.DataFrame:
    """`replicate` for each claim (default: `CLAIMS`), a row each."""
    return pd.DataFrame([replicate(claim, seeds) for claim in (CLAIMS if claims is None else claims)])


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, headed by the date, the machine and its numerics."""
    from ..device import cpu_has_bf16

    numerics = "bfloat16 frozen passes" if cpu_has_bf16() else "float32 throughout"
    lines = [
        f"Run on {date.today().isoformat()} on {platform.processor() or platform.machine()} ({numerics}), "
        f"`transferlab replicate`. {int(table.holds.sum())} of {len(table)} claims held.",
        "",
        "| lesson | question | the lesson's seeds: verdict | new seeds: verdict | holds |",
        "|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        lesson, again = f"{r['lesson seeds']}: {r['lesson verdict']}", f"{r['new seeds']}: {r['replication']}"
        lines.append(f"| {r['lesson']} | {r['question']} | {lesson} | {again} | {'yes' if r['holds'] else 'no'} |")
    return "\n".join(lines) + "\n"


def _claims() -> list[Claim]:
    fashion = ExperimentConfig(dataset="fashion_mnist", backbone="efficientnet_lite0", per_class=10)
    lesson2 = replace(fashion, freeze_depth=4)
    head_only = replace(fashion, freeze_depth=9)
    lesson4 = replace(fashion, freeze_depth=6)
    clothes = ExperimentConfig(dataset="fashion_mnist", classes=(5, 6, 7, 8, 9), backbone="labnet", per_class=20,
                               freeze_depth=3, steps=120, val_per_class=20, precision="fp32")  # fmt: skip
    words = ExperimentConfig(dataset="wordnet", backbone="minilm_l6", per_class=8, freeze_depth=5, steps=30,
                             val_per_class=10, test_per_class=50)  # fmt: skip
    choice = replace(fashion, freeze_depth=6, test_per_class=200, val_per_class=20)
    return [
        Claim("2", "Feature extraction (probe) or fine-tuning (k = 4), 10 images per class?",
              ("probe", lesson2, "probe"), ("finetune", lesson2, "finetune"), (0,)),
        Claim("3", "Does BatchNorm's statistics moving in frozen blocks cost accuracy?",
              ("statistics frozen", head_only, "finetune"),
              ("statistics moving", replace(head_only, freeze_bn_stats=False), "finetune"), (0,)),
        Claim("4", "Fine-tuning (k = 6) against the same network from scratch, 10 images per class",
              ("finetune", lesson4, "finetune"), ("scratch", lesson4, "scratch"), (0,)),
        Claim("6", "A source of similar classes (clothes 0-4) against scratch, on clothes 5-9",
              ("finetune", clothes, "finetune"), ("scratch", clothes, "scratch"), (0, 1, 2)),
        Claim("9", "Fine-tuning against scratch in the map's corner: k = 9, 2 images per class",
              ("finetune", replace(head_only, per_class=2), "finetune"),
              ("scratch", replace(head_only, per_class=2), "scratch"), (0,)),
        Claim("10", "Fine-tuning a sentence encoder or a probe on it, 8 definitions per kind?",
              ("finetune", words, "finetune"), ("probe", words, "probe"), (0, 1, 2)),
        Claim("11", "EfficientNet-Lite0 or Lite2, fine-tuned at the same size, depth and budget?",
              ("efficientnet_lite0", choice, "finetune"),
              ("efficientnet_lite2", replace(choice, backbone="efficientnet_lite2"), "finetune"), (0, 1)),
    ]  # fmt: skip


CLAIMS = _claims()

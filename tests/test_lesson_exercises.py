"""A learner who changes a lesson's settings never hits a failing check: the checks that keep the
text true run only on the lesson's own settings, and the words come from the learner's numbers.

Lesson 2 (the yardstick's lesson) is executed with its settings changed, as exercise 1 asks."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
LESSON_2 = LESSONS / "02_feature_extraction_or_fine_tuning.ipynb"
SETTINGS = "config, arms = LESSON, LESSON_ARMS"


def changed(path: Path, old: str, new: str) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
    assert len(cells) == 1, f"{path.name} has no single settings line {old!r}"
    cells[0].source = cells[0].source.replace(old, new)
    return nb


@pytest.mark.parametrize(
    "settings",
    [
        "config, arms = replace(LESSON, per_class=3, steps=15), LESSON_ARMS",  # exercise 1, made quick
        'config, arms = replace(LESSON, per_class=3, steps=15), ("probe", "finetune", "scratch")',  # an arm less
    ],
)
def test_lesson_2_with_a_learners_settings_runs_to_the_end_in_its_own_words(settings):
    nb = changed(LESSON_2, SETTINGS, settings)
    env = {"PYTHONPATH": str(LESSONS.parent)}
    os.environ.update(env)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(LESSONS)}}).execute()
    shown = "\n".join(
        "".join(o.get("data", {}).get("text/markdown", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "You changed the settings" in shown
    assert "beats" in shown or "within noise" in shown  # the verdicts, from the yardstick


@pytest.mark.parametrize("path", sorted(LESSONS.glob("*.ipynb")), ids=lambda p: p.name[:2])
def test_every_lesson_answers_its_prediction_and_links_its_solutions(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    if "Predict first" in text:
        assert "Were you right?" in text, "a prediction asked for gets its answer back"
    solutions = LESSONS / "solutions" / f"{path.stem}.md"
    assert f"solutions/{path.stem}.md" in text and solutions.exists(), f"link {solutions.name} from the exercises"

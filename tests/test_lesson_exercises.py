"""A learner who changes a lesson's settings never hits a failing check: the checks that keep the
text true run only on the lesson's own settings, and the words come from the learner's numbers.

Lesson 2 (the yardstick's lesson) is executed with its settings changed, as exercise 1 asks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from tests import verdicts

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
LESSON_2 = LESSONS / "02_feature_extraction_or_fine_tuning.ipynb"
SETTINGS = "config, arms = LESSON, LESSON_ARMS"
# Appended to the lesson: each arm's right and wrong answers on the test split, from its predictions.
ANSWERS = """import json
labels = result.data.test_labels.cpu().numpy()
print(json.dumps({arm: (run.test_predictions.cpu().numpy() == labels).tolist() for arm, run in result.runs.items()}))
"""


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
    nb.cells.append(nbformat.v4.new_code_cell(ANSWERS))
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
    answers = json.loads("".join(o.text for o in nb.cells[-1].outputs if o.output_type == "stream"))
    correct = {arm: np.array(right) for arm, right in answers.items()}
    accuracy = {arm: right.mean() for arm, right in correct.items()}
    # Every pair the lesson judges, each sentence's winner, difference and interval those of the
    # learner's own answers (not only some sentence with "beats" or "within noise" in it).
    judged = {frozenset(pair) for pair in verdicts.check_all(shown, correct)}
    pairs = [("finetune", "scratch"), ("probe", "finetune"), ("probe", "pixels"), ("finetune", "pixels")]
    assert judged == {frozenset(p) for p in [*pairs, ("probe", "scratch")] if set(p) <= set(correct)}
    # "Were you right?": the arms in order of the learner's test accuracy, and the gap in points.
    ranking = re.search(r"The order by test accuracy is ([\w >]+?), but", shown)[1].split(" > ")
    assert sorted(ranking) == sorted(correct) and [accuracy[a] for a in ranking] == sorted(accuracy.values())[::-1]
    gap = re.search(r"Fine-tuning and scratch are (-?\d+) points apart", shown)[1]
    assert abs(int(gap) - (accuracy["finetune"] - accuracy["scratch"]) * 100) <= 0.5 + 1e-9


@pytest.mark.parametrize("path", sorted(LESSONS.glob("*.ipynb")), ids=lambda p: p.name[:2])
def test_every_lesson_answers_its_prediction_and_links_its_solutions(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "Predict first" in nb.cells[0].source, "every lesson opens by asking for a prediction"
    # ...and gives the answer back: shown in the lesson's saved outputs, so it ran.
    answered = [
        o
        for c in nb.cells[1:]
        if c.cell_type == "code"
        for o in c.outputs
        if "Were you right?" in str(o.get("data", {}))
    ]
    assert answered, "a prediction asked for gets its answer back"
    solutions = LESSONS / "solutions" / f"{path.stem}.md"
    assert f"solutions/{path.stem}.md" in text and solutions.exists(), f"link {solutions.name} from the exercises"


CHECKS = (
    "above_chance(",
    "beats_beyond_noise(",
    "fair_chance(",
    "shallowest_within_noise(",
    "verdict(",
    "within_noise(",
)


@pytest.mark.parametrize("path", sorted(LESSONS.glob("*.ipynb")), ids=lambda p: p.name[:2])
def test_every_lesson_checks_two_exercises_and_reads_every_figure_aloud(path):
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in nb.cells if c.get("id") == "checked-exercises"]
    assert len(checked) == 1, "a cell of checked exercises, after the exercises"
    exercises = set(re.findall(r"# Exercise (\d+)", checked[0].source))
    assert len(exercises) >= 2 and sum(checked[0].source.count(check) for check in CHECKS) >= 2
    # It ran, on the lesson's own results, and answered in the checks' words (never an error).
    said = "\n".join(str(o.get("text", "")) + str(o.get("data", {})) for o in checked[0].outputs)
    assert "Not yet." in said or "Done." in said, said
    assert not [o for o in checked[0].outputs if o.output_type == "error"]
    # Every figure is followed by its one-sentence summary, saved under it.
    for cell in nb.cells:
        if cell.cell_type == "code" and re.search(r"\bfig = plots\.\w+\(", cell.source):
            assert "display(fig, Markdown(plots.summary(fig)))" in cell.source, cell.source[:80]
            shown = [o for o in cell.outputs if "text/markdown" in o.get("data", {})]
            assert shown and len(shown[-1]["data"]["text/markdown"]) > 20, cell.source[:80]
    figures = re.findall(
        r"^(?:fig = )?plots\.(?!summary|notebook_renderers)\w+\(",
        "\n".join(c.source for c in nb.cells if c.cell_type == "code"),
        re.M,
    )
    assert all(f.startswith("fig = ") for f in figures), "every figure is named fig and summarised"

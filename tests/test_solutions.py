"""The solutions' code is the engine's code: every Python block in lessons/solutions/ parses, its
imports resolve, and every `tl.` and `plots.` name it uses exists. (Running every block would
train for as long as the lessons do; what goes stale as the engine moves is names.)"""

import ast
import importlib
import re
from pathlib import Path

import pytest

import transferlab as tl
from transferlab import plots

SOLUTIONS = sorted((Path(__file__).parents[1] / "lessons" / "solutions").glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def test_there_is_a_solution_with_code_for_every_lesson():
    lessons = sorted((Path(__file__).parents[1] / "lessons").glob("*.ipynb"))
    assert [p.stem for p in SOLUTIONS] == [p.stem for p in lessons]
    assert sum(len(blocks(p)) for p in SOLUTIONS) >= len(SOLUTIONS)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem[:2])
def test_every_block_parses_and_names_what_the_engine_has(path):
    for code in blocks(path):
        tree = ast.parse(code, filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}: {node.module} has no {alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                owner = {"tl": tl, "plots": plots}.get(node.value.id)
                if owner is not None:
                    assert hasattr(owner, node.attr), f"{path.name}: {node.value.id}.{node.attr} does not exist"

"""`transferlab app` and `transferlab lab`: the dashboard and the lessons, from a clone or an installed package.

    transferlab app                      # the dashboard on http://127.0.0.1:8501
    transferlab app --host 0.0.0.0       # serve a classroom
    transferlab lab                      # the lessons in JupyterLab

The dashboard (`app.py` and `dashboard/` at the top of a clone) is not part of the engine, which
never imports streamlit; a wheel carries it as files in `transferlab/_app/`, run by Streamlit from
there. Its Streamlit settings (`dashboard/streamlit.toml`) are passed as options, so the page looks
and behaves the same whatever folder it is started from. The lessons, from a clone or a wheel, are
copied to a folder of the learner's own first (`--dir`, by default `transferlab-lessons` here), with
their outputs cleared, so that each question is met fresh and the learner's edits are theirs; a file
already there is never overwritten, and the executed notebooks in `lessons/` are never edited.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
from pathlib import Path

from ._paths import PROJECT_ROOT, in_clone

PACKAGE = Path(__file__).resolve().parent
# The page: the clone's app.py, or the copy a wheel carries (pyproject.toml maps it to transferlab/_app).
PAGE = PROJECT_ROOT / "app.py" if in_clone() else PACKAGE / "_app" / "app.py"

__all__ = ["app_command", "lab_command", "lessons_source"]


def streamlit_options(path: Path = PAGE.parent / "dashboard" / "streamlit.toml") -> list[str]:
    """The settings file as Streamlit's command-line options: [server] headless = true -> --server.headless=true."""
    options = []
    for section, values in tomllib.loads(path.read_text()).items():
        for key, value in values.items():
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            options.append(f"--{section}.{key}={shown}")
    return options


def app_command(host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(PAGE), *streamlit_options()] + [
        f"--server.address={host}",
        f"--server.port={port}",
    ]


def lessons_source() -> Path:
    """Where the lessons are: the clone's `lessons/`, or the copy inside the installed package."""
    return PROJECT_ROOT / "lessons" if in_clone() else PACKAGE / "lessons"


def lab_command(folder: Path) -> list[str]:
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={folder}"]
    return command + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])


def write_cleared(notebook: Path, target: Path) -> None:
    """Write `notebook` to `target` with every code cell's outputs and execution count cleared, as Jupyter writes it."""
    content = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in content["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    target.write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def copy_lessons(source: Path, folder: Path) -> list[Path]:
    """Copy the lessons into `folder`, notebooks with their outputs cleared, leaving alone every file
    already there; the files copied."""
    copied = []
    for path in sorted(source.rglob("*")):
        target = folder / path.relative_to(source)
        if path.is_file() and path.suffix in (".ipynb", ".md", ".cfg") and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".ipynb":
                write_cleared(path, target)
            else:
                shutil.copy2(path, target)
            copied.append(target)
    return copied


def run_app(host: str, port: int) -> None:
    os.execv(sys.executable, app_command(host, port))


def run_lab(folder: str | None) -> None:
    """Copy the lessons, cleared, to `folder` (by default `transferlab-lessons` here) and open them there."""
    target = Path(folder or "transferlab-lessons").resolve()
    copied = copy_lessons(lessons_source(), target)
    print(f"{len(copied)} lesson file(s) copied to {target}", file=sys.stderr)
    os.execv(sys.executable, lab_command(target))

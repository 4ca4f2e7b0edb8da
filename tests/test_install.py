"""The package as a learner in a JupyterHub gets it: a wheel installed into a fresh environment,
used from a folder that is not the clone, with no network and no PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """A new virtual environment holding only the wheel built from this clone; its dependencies
    come from the environment running the tests (a .pth line: nothing is downloaded)."""
    where = tmp_path_factory.mktemp("install")
    wheels = where / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*build, "-w", str(wheels), str(ROOT)], check=True, cwd=where, capture_output=True)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("transferlab-*.whl"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRANSFERLAB_DATA", "VIRTUAL_ENV")}
    # --ignore-installed: the clone's editable install, seen through the .pth line, stays as it is.
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*install, "--ignore-installed", str(wheel)], check=True, capture_output=True, env=env)
    elsewhere = where / "elsewhere"
    elsewhere.mkdir()
    env |= {"HOME": str(where / "home"), "XDG_CACHE_HOME": "", "TRANSFERLAB_STORE": str(where / "runs.sqlite")}
    return {"venv": venv, "python": python, "cwd": elsewhere, "env": env, "home": where / "home"}


def run(fresh: dict, *command: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=fresh["cwd"], env=fresh["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_command_works_from_a_fresh_install_outside_the_clone(fresh):
    transferlab = str(fresh["venv"] / "bin" / "transferlab")
    assert {"app", "lab", "compare", "datasets", "import"} <= set(
        run(fresh, transferlab, "--help").stdout.split("{")[1].split("}")[0].split(",")
    )
    listed = run(fresh, transferlab, "datasets").stdout
    assert "fashion_mnist" in listed and f"downloads into {fresh['home'] / '.cache' / 'transferlab'}" in listed
    argv = ["compare", "--dataset", "test_blobs", "--backbone", "test_tiny", "--per-class", "8", "--freeze-depth", "1"]
    out = json.loads(run(fresh, transferlab, *argv, "--epochs", "2", "--json").stdout)
    assert set(out["arms"]) == {"finetune", "scratch"} and out["verdict"]
    where = run(fresh, str(fresh["python"]), "-c", "import transferlab._paths as p; print(p.__file__, p.data_dir())")
    module, data = where.stdout.split()
    assert Path(module).is_relative_to(fresh["venv"]), "the installed package, not the clone"
    assert Path(data) == fresh["home"] / ".cache" / "transferlab", (
        "an installed package keeps its data in the user's cache"
    )


def test_the_installed_package_ships_the_dashboard_the_lessons_and_labnet(fresh):
    from transferlab.launch import lessons_source

    check = (
        "import transferlab.launch as l, transferlab._paths as p;"
        "print(l.lessons_source(), l.PAGE, p.shipped_dir() / 'labnet_fashion_mnist_0-4.pt')"
    )
    lessons, page, labnet = map(Path, run(fresh, str(fresh["python"]), "-c", check).stdout.split())
    assert lessons.is_relative_to(fresh["venv"]) and page.is_relative_to(fresh["venv"])
    assert sorted(p.name for p in lessons.glob("*.ipynb")) == sorted(p.name for p in lessons_source().glob("*.ipynb"))
    assert (lessons / "solutions").is_dir() and labnet.is_file() and page.is_file()
    # The page runs from the installed package, with the settings it ships.
    page_runs = (  # Streamlit puts the page's folder first on sys.path; AppTest leaves that to its caller
        "import sys; from streamlit.testing.v1 import AppTest; import transferlab.launch as l;"
        "sys.path.insert(0, str(l.PAGE.parent)); at = AppTest.from_file(str(l.PAGE), default_timeout=120).run();"
        "assert not at.exception, at.exception; print(at.title[0].value)"
    )
    assert "Does a pretrained network learn faster?" in run(fresh, str(fresh["python"]), "-c", page_runs).stdout
    options = tomllib.loads((ROOT / "dashboard" / "streamlit.toml").read_text())
    assert options["server"]["fileWatcherType"] == "none"


def test_lab_copies_the_lessons_once_and_never_over_a_learners_edits(tmp_path):
    from transferlab.launch import copy_lessons, lessons_source

    copied = copy_lessons(lessons_source(), tmp_path / "mine")
    assert len([p for p in copied if p.suffix == ".ipynb"]) == len(list(lessons_source().glob("*.ipynb")))
    edited = tmp_path / "mine" / "01_what_a_pretrained_network_knows.ipynb"
    edited.write_text("{}")
    assert copy_lessons(lessons_source(), tmp_path / "mine") == [] and edited.read_text() == "{}"


def test_app_passes_the_shipped_settings_to_streamlit():
    from transferlab.launch import app_command

    command = app_command("0.0.0.0", 8600)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(ROOT / "app.py")
    assert {"--server.fileWatcherType=none", "--theme.baseFontSize=18", "--server.address=0.0.0.0"} <= set(command)
    assert "--server.port=8600" in command and "--runner.postScriptGC=false" in command

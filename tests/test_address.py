"""The dashboard's address is made from the config's fields: every field can travel in a link."""

from dataclasses import fields
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.address import NAMES, TUNED, values
from transferlab import ExperimentConfig

APP = Path(__file__).resolve().parent.parent / "app.py"


@pytest.fixture(autouse=True)
def test_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_STORE", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("TRANSFERLAB_SHOW_TEST_ENTRIES", "1")


def open_page(**address) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    for name, value in address.items():
        at.query_params[name] = value
    return at.run()


def test_every_field_has_a_name_in_the_address():
    assert {s.name for s in NAMES.values()} == {f.name for f in fields(ExperimentConfig)}
    assert {"k", "n", "px", "head"} <= set(NAMES) and TUNED not in NAMES


def test_the_address_holds_the_shown_settings_and_any_field_off_its_default():
    plain = values(ExperimentConfig(), ("finetune", "scratch"))
    assert {"backbone", "dataset", "k", "n", "lr", "seed"} <= set(plain)
    assert "label_noise" not in plain and "patience" not in plain and TUNED not in plain
    changed = values(ExperimentConfig(label_noise=0.25, classes=(0, 2), patience=3), ("finetune", "scratch_tuned"))
    assert (changed["label_noise"], changed["classes"], changed["patience"], changed[TUNED]) == (
        "0.25",
        "0,2",
        "3",
        "1",
    )


def test_a_field_without_a_control_reaches_the_comparison_from_the_address():
    at = open_page(backbone="test_tiny", dataset="test_blobs", n="2", label_noise="0.25", classes="0,1,2")
    assert not at.exception
    # The page built its config with them, so it keeps them in its address (it drops what it does not use).
    assert (at.query_params["label_noise"], at.query_params["classes"]) == ("0.25", "0,1,2")
    assert "k" in at.query_params and "px" in at.query_params  # the page wrote its own settings too
    bad = open_page(backbone="test_tiny", dataset="test_blobs", label_noise="lots")
    assert any("ignored them: label_noise=lots" in w.value for w in bad.warning)
    assert "label_noise" not in bad.query_params

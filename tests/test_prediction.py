"""Predict, then run: a prediction is read, kept with the comparison in the run store, and judged
against the result by the kit's one yardstick."""

from types import SimpleNamespace

import pytest

from transferlab import Prediction
from transferlab.errors import ConfigError
from transferlab.stats import Difference
from transferlab.training.store import RunStore


def result_with(estimate: float, low: float, high: float):
    """A stand-in for a comparison whose finetune - scratch difference is as given (fractions)."""
    return SimpleNamespace(difference=lambda a, b: Difference(a, b, estimate, low, high, "paired bootstrap"))


@pytest.mark.parametrize(
    ("text", "winner", "points", "gap"),
    [
        ("finetune+20", "finetune", 20.0, 20.0),
        ("scratch+5", "scratch", 5.0, -5.0),
        ("tie", "tie", None, 0.0),
        ("Finetune", "finetune", None, None),
        (" scratch + 2.5 ", "scratch", 2.5, -2.5),
    ],
)
def test_a_prediction_is_read_as_written(text, winner, points, gap):
    p = Prediction.parse(text)
    assert (p.winner, p.points, p.gap) == (winner, points, gap)


@pytest.mark.parametrize("text", ["probe+5", "finetune-5", "tie+3", "20", ""])
def test_a_prediction_that_cannot_be_read_says_how_to_write_one(text):
    with pytest.raises(ConfigError, match=r"finetune\+20, scratch\+5\), or 'tie'"):
        Prediction.parse(text)


def test_a_prediction_is_judged_by_the_interval_not_the_point_estimate():
    beats = result_with(0.31, 0.25, 0.37)
    assert (
        Prediction.parse("finetune+20")
        .against(beats)
        .endswith("Right winner; the gap was 11 points larger than you thought.")
    )
    assert Prediction.parse("finetune+30").against(beats).endswith("the gap was about as large as you thought.")
    assert "Not what you predicted" in Prediction.parse("scratch+5").against(beats)
    noise = result_with(0.02, -0.01, 0.05)  # ahead, but within noise: a tie
    assert "Not what you predicted" in Prediction.parse("finetune+2").against(noise)
    told = Prediction.parse("tie").against(noise)
    assert told.startswith("You predicted finetune and scratch within noise of each other. It came out: finetune and")
    assert told.endswith("As you predicted.")


def test_predictions_are_kept_with_the_comparison_one_per_session(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    store.predict("key-1", "alice", Prediction.parse("finetune+20"))
    store.predict("key-1", "bob", Prediction.parse("tie"))
    store.predict("key-1", "alice", Prediction.parse("finetune+30"))  # she changed her mind before Run
    store.predict("key-2", "alice", Prediction.parse("scratch+5"))
    assert store.prediction("key-1", "alice") == Prediction("finetune", 30.0)
    assert store.prediction("key-1", "carol") is None
    room = store.predictions("key-1")
    assert sorted(room.gap) == [0.0, 30.0] and set(room.owner) == {"alice", "bob"}
    assert len(store.predictions()) == 3


def test_compare_takes_a_prediction_and_says_how_it_held_up(capsys):
    from transferlab.__main__ import main

    argv = ["compare", "--dataset", "test_blobs", "--backbone", "test_tiny", "--per-class", "8", "--freeze-depth", "1"]
    assert main([*argv, "--epochs", "2", "--predict", "finetune+20"]) == 0
    assert "You predicted finetune by about 20 points. It came out: " in capsys.readouterr().out
    assert main([*argv, "--predict", "probe+5"]) == 2
    assert "cannot read the prediction 'probe+5'" in capsys.readouterr().err

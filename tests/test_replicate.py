"""Claims that replicate: a lesson's comparison run again on new seeds, judged by the one yardstick
(on the tiny test backbone here; `transferlab replicate` runs the lessons' own)."""

from dataclasses import replace

import pytest

from transferlab.__main__ import main
from transferlab.studies import replicate as replication
from transferlab.studies.replicate import CLAIMS, Claim, markdown, replicate, replicate_all


@pytest.fixture
def claim(tiny):
    fast = replace(tiny, lr=3e-2, precision="fp32")
    return Claim(
        "t", "finetune or scratch on blobs?", ("finetune", fast, "finetune"), ("scratch", fast, "scratch"), (0,)
    )


def test_a_claim_is_judged_on_the_lessons_seeds_and_again_on_new_ones(claim):
    row = replicate(claim, seeds=(1, 2))
    assert row["lesson seeds"] == "0" and row["new seeds"] == "1, 2"
    # one seed: a verdict on two trained models; two seeds: on the methods, over seeds and test images
    assert "interval" in row["lesson verdict"] and "interval" in row["replication"]
    original, again = claim.judge((0,)), claim.judge((1, 2))
    assert original.seeds == 1 and again.seeds == 2 and row["holds"] == (original.winner == again.winner)
    with pytest.raises(ValueError, match="seeds the lesson did not use"):
        replicate(claim, seeds=(0, 1))


def test_the_table_says_when_where_and_how_many_held(claim):
    table = replicate_all([claim, claim], seeds=(3,))
    text = markdown(table)
    assert f"{int(table.holds.sum())} of 2 claims held" in text and text.count("| t | finetune or scratch") == 2
    assert "bfloat16" in text or "float32" in text


def test_every_lesson_claim_names_two_sides_and_the_lessons_seeds():
    assert len({c.lesson for c in CLAIMS}) == len(CLAIMS) >= 6
    for c in CLAIMS:
        assert c.a[0] != c.b[0] and c.seeds and not set(c.seeds) & {10, 11, 12}


def test_the_command_writes_the_table_and_refuses_an_unknown_lesson(claim, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(replication, "CLAIMS", [claim])
    out = tmp_path / "replication.md"
    assert main(["replicate", "--seeds", "5", "--out", str(out)]) == 0
    assert out.read_text() == capsys.readouterr().out.rstrip("\n") + "\n"
    assert main(["replicate", "--lessons", "99"]) == 2
    assert "no claim for lessons ['99']" in capsys.readouterr().err

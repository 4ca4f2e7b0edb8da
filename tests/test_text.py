"""Language: the MiniLM encoder as blocks, WordNet's definitions, the same comparison as for
images (with the TF-IDF baseline), zero-shot classification, and text in the dashboard's results."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from tests import verdicts
from transferlab import ConfigError, ExperimentConfig, compare, create_backbone, load_dataset
from transferlab.models.textnet import TEXT_LENGTH, minilm_dir, tokenize
from transferlab.studies.zeroshot import encode_texts, labels_worth, zero_shot
from transferlab.training.outcome import Outcome

PAIR = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


@pytest.fixture(scope="module")
def wordnet():
    return load_dataset("wordnet")


@pytest.fixture
def tiny_text() -> ExperimentConfig:
    """The tiny text backbone on WordNet's definitions: a whole comparison in seconds."""
    return ExperimentConfig(
        dataset="wordnet", backbone="test_tiny_text", per_class=5, freeze_depth=2, steps=6, batch_size=16,
        lr=3e-3, val_per_class=5, test_per_class=10, precision="fp32",
    )  # fmt: skip


def test_minilm_gives_the_published_encoders_vectors_for_a_known_sentence_pair():
    """Our BERT blocks with the packaged weights equal sentence-transformers' all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer

    ours = encode_texts(PAIR, precision="fp32")
    theirs = SentenceTransformer(str(minilm_dir()), device="cpu").encode(PAIR, normalize_embeddings=True)
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, torch.from_numpy(theirs), atol=1e-5, rtol=1e-4)
    similar, unrelated = float(ours[0] @ ours[1]), float(ours[0] @ ours[2])
    assert similar > 0.6 and unrelated < 0.2, (similar, unrelated)


def test_minilm_is_blocks_whose_depth_means_the_same_as_for_images():
    model = create_backbone("minilm_l6", num_classes=10).eval()
    assert list(model.blocks) == ["embeddings", *(f"layer{i}" for i in range(1, 7))]
    ids = tokenize(PAIR)
    assert ids.shape == (3, TEXT_LENGTH) and ids.dtype == torch.int64
    with torch.no_grad():
        at_3 = model.forward_blocks(ids, 0, 3)
        assert at_3.shape == (3, TEXT_LENGTH, 385)  # hidden size and the attention mask's channel
        torch.testing.assert_close(model(at_3, start=3), model(ids))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(22.6e6, rel=0.01)


def test_wordnet_definitions_by_kind_with_a_fixed_test_split(wordnet):
    assert wordnet.modality == "text" and wordnet.num_classes == 10
    assert torch.bincount(wordnet.test_labels).tolist() == [100] * 10
    assert len(wordnet.train_labels) > 50_000 and len(wordnet.train_texts) == len(wordnet.train_labels)
    torch.testing.assert_close(wordnet.train_images[:5], tokenize(wordnet.train_texts[:5]))
    animal = wordnet.classes.index("animal")
    assert any(t.startswith("a member of the genus Canis") for t in np.array(wordnet.train_texts)[
        (wordnet.train_labels == animal).numpy()])  # fmt: skip
    assert "wordnet" in repr(wordnet) and "text" in repr(wordnet)


def test_a_text_comparison_has_every_arm_and_the_tfidf_baseline(tiny_text, wordnet):
    result = compare(tiny_text, ("finetune", "probe", "scratch", "tfidf"))
    table = result.table.set_index("arm")
    assert list(table.index) == ["finetune", "probe", "scratch", "tfidf"]
    # Each arm's accuracy is the share of its test answers that are right, counted here.
    labels = result.data.test_labels.cpu().numpy()
    correct = {arm: result.runs[arm].test_predictions.cpu().numpy() == labels for arm in table.index}
    assert table.test_accuracy.to_dict() == pytest.approx({arm: c.mean() for arm, c in correct.items()})
    assert table.loc["tfidf", "test_accuracy"] > 0.2  # 50 definitions are enough to beat chance (0.1)
    assert table.loc["finetune", "cached_features"] and not table.loc["scratch", "cached_features"]
    assert table.loc["tfidf", "trainable_params"] == 0 and table.loc["tfidf", "backbone"] == "none"
    tfidf = result.history[result.history.arm == "tfidf"]
    assert sorted(tfidf.split) == ["test", "train", "val"] and (tfidf.step == 6).all()
    # The verdict: the most accurate arm against each other arm, each sentence's numbers and
    # interval those of the answers; then every arm's accuracy, best first.
    pairs = verdicts.check_all(result.verdict(), correct)
    assert len(pairs) == 3 and {b for _, b in pairs} | {pairs[0][0]} == set(table.index)
    assert {a for a, _ in pairs} == {pairs[0][0]} and table.test_accuracy[pairs[0][0]] == table.test_accuracy.max()
    listed = re.findall(r"(\w+) (\d+\.\d)% in \d+ s", result.verdict().split("Test accuracy: ")[1])
    ranked = table.test_accuracy.sort_values(ascending=False)
    assert [float(p) for _, p in listed] == [round(a * 100, 1) for a in ranked]
    assert all(table.test_accuracy[arm] == pytest.approx(float(p) / 100, abs=5e-4) for arm, p in listed)

    outcome = Outcome.of(result)
    texts, truth, preds = outcome.mistakes["tfidf"]
    assert texts.dtype.kind == "U" and len(texts) > 0 and (truth != preds).all()
    test_texts = [wordnet.test_texts[i] for i in result.data.rows["test"].tolist()]
    labels = result.data.test_labels.tolist()
    assert all(labels[test_texts.index(text)] == label for text, label in zip(texts, truth))


def test_the_frozen_prefix_cache_gives_the_same_text_run(tiny_text):
    cached = compare(tiny_text, ("finetune",))
    fresh = compare(tiny_text.__class__(**{**tiny_text.__dict__, "cache_features": False}), ("finetune",))
    assert cached.table.cached_features[0] and not fresh.table.cached_features[0]
    torch.testing.assert_close(cached.runs["finetune"].test_predictions, fresh.runs["finetune"].test_predictions)
    assert cached.table.test_loss[0] == pytest.approx(fresh.table.test_loss[0], rel=1e-4)


def test_text_and_images_need_their_own_backbones_and_baselines():
    with pytest.raises(ConfigError, match="choose a text backbone: minilm_l6"):
        ExperimentConfig(dataset="wordnet", backbone="efficientnet_lite0").validate()
    with pytest.raises(ConfigError, match="choose a image backbone"):
        ExperimentConfig(dataset="fashion_mnist", backbone="minilm_l6").validate()
    with pytest.raises(ConfigError, match="augment applies to images only"):
        ExperimentConfig(dataset="wordnet", backbone="minilm_l6", augment=True).validate()
    config = ExperimentConfig(dataset="wordnet", backbone="test_tiny_text", per_class=2, freeze_depth=1, steps=2)
    with pytest.raises(ConfigError, match="does not apply to text data; use tfidf"):
        compare(config, ("pixels",))


def test_zero_shot_reads_definitions_with_no_labels():
    config = ExperimentConfig(dataset="wordnet", backbone="minilm_l6", test_per_class=20)
    names, described = zero_shot(config), zero_shot(config, "descriptions")
    assert names.name == "zero-shot (names)" and described.name == "zero-shot (descriptions)"
    assert len(names.labels) == 200 and names.prompts["animal"] == ("animal",)
    assert names.accuracy > 0.4 and described.accuracy > 0.4, (names.accuracy, described.accuracy)  # chance: 0.1
    assert described.row() == {"arm": "zero-shot (descriptions)", "per_class": 0, "test_accuracy": described.accuracy}
    with pytest.raises(ConfigError, match="missing: plant"):
        zero_shot(config, {c: (c,) for c in names.prompts if c != "plant"})


def test_zero_shot_images_through_imagenet_classes():
    config = ExperimentConfig(dataset="fashion_mnist", test_per_class=10)
    guess = zero_shot(config, size=128)
    assert guess.name == "zero-shot (ImageNet classes)" and guess.prompts["Sneaker"] == ("running shoe",)
    assert guess.accuracy > 0.2, guess.accuracy  # chance: 0.1; about 0.36 on the whole test split
    with pytest.raises(ConfigError, match="not ImageNet class names: shoe"):
        zero_shot(config, {**guess.prompts, "Sneaker": ("shoe",)})


def test_labels_worth_reads_the_few_shot_curve():
    table = pd.DataFrame(
        {"arm": "finetune", "per_class": [1, 1, 5, 5, 20], "test_accuracy": [0.3, 0.4, 0.55, 0.65, 0.8]}
    )
    assert labels_worth(0.6, table) == pytest.approx(5.0)
    assert labels_worth(0.7, table) == pytest.approx(5 + 15 * 0.1 / 0.2)
    assert labels_worth(0.2, table) == 1.0 and labels_worth(0.9, table) is None


def test_the_command_line_runs_zero_shot_and_a_text_comparison(capsys):
    from transferlab.__main__ import main

    assert main(["zeroshot", "--dataset", "wordnet", "--prompts", "descriptions", "--test-per-class", "5"]) == 0
    out = capsys.readouterr().out
    assert "zero-shot (descriptions) on 50 test examples of wordnet" in out and "animal" in out
    args = ["compare", "--dataset", "wordnet", "--backbone", "test_tiny_text", "--per-class", "3", "--freeze-depth",
            "1", "--steps", "4", "--arms", "finetune,tfidf", "--json"]  # fmt: skip
    assert main(args) == 0
    assert '"tfidf"' in capsys.readouterr().out
    assert main(["compare", "--dataset", "wordnet"]) == 2
    assert "choose a text backbone: minilm_l6" in capsys.readouterr().err


def test_a_text_run_with_dropout_gives_the_same_numbers_whatever_ran_before_and_beside_it(tiny_text):
    """Each run owns its random state (dropout's draws), so what ran before and beside it changes nothing."""
    assert create_backbone("test_tiny_text", 10).blocks["layer1"].dropout > 0  # the draws exist to be isolated
    first = compare(tiny_text, ("finetune", "scratch")).table.set_index("arm")
    torch.rand(1000)  # the global generator moves, as anything else in a process may move it
    again = compare(tiny_text, ("finetune", "scratch")).table.set_index("arm")
    alone = compare(tiny_text, ("scratch",)).table.set_index("arm")  # another set of arms beside it
    for column in ("val_accuracy", "test_accuracy", "test_loss"):
        assert first[column].tolist() == again[column].tolist()
        assert first.loc["scratch", column] == alone.loc["scratch", column]


def test_without_its_own_random_state_a_text_run_would_depend_on_what_ran_before(tiny_text, monkeypatch):
    """The check above can fail: with dropout drawing from the global generator, the numbers move."""
    import contextlib

    import transferlab.training.run

    monkeypatch.setattr(transferlab.training.run, "RandomState", lambda seed, device: contextlib.nullcontext())
    torch.manual_seed(1)
    first = compare(tiny_text, ("scratch",)).table.test_loss.iloc[0]
    torch.manual_seed(2)
    assert compare(tiny_text, ("scratch",)).table.test_loss.iloc[0] != first

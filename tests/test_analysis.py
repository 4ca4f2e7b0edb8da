"""The lesson helpers: features, baselines, sweeps and export, on the tiny backbone (seconds)."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import transferlab as tl
from transferlab import (
    Arm,
    Callback,
    ConfigError,
    centroid_baseline,
    compare,
    create_backbone,
    dataset_features,
    export_model,
    extract_features,
    load_model,
    nearest_centroid,
    pca_2d,
    plots,
    sweep,
    transplant,
)


def test_extract_features_matches_the_model_and_random_differs_from_pretrained(tiny):
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    feats = extract_features("test_tiny", images)
    assert feats.shape == (5, 8)
    assert torch.equal(feats, extract_features("test_tiny", images))  # deterministic
    assert not torch.allclose(feats, extract_features("test_tiny", images, init="random", seed=3))
    # A state dict as init gives the same features as the weights it came from.
    state = create_backbone("test_tiny", 4, pretrained=True).blocks.state_dict()
    assert torch.allclose(feats, extract_features("test_tiny", images, init=state))


def test_dataset_features_use_the_experiments_subset(tiny):
    f = dataset_features(tiny)
    result = compare(tiny, arms=["probe"])
    assert len(f.train) == 4 * tiny.per_class and len(f.test) == len(result.data.test_labels)
    assert torch.equal(f.test_labels, result.data.test_labels.cpu())
    assert f.classes == result.data.dataset.classes


def test_nearest_centroid_against_a_hand_computation():
    train = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[5.0, 1.0], [0.2, 0.3], [1.0, 0.9]])
    assert nearest_centroid(train, labels, test).tolist() == [0, 1, 0]


def test_nearest_centroid_agrees_with_sklearn_on_normalised_centroids():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(40, 6, generator=g), torch.randn(30, 6, generator=g)
    labels = torch.arange(4).repeat(10)
    assert nearest_centroid(train, labels, test).tolist() == cosine_centroid_oracle(train, labels, test).tolist()


def cosine_centroid_oracle(train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor) -> np.ndarray:
    """For unit vectors, the largest cosine is the smallest Euclidean distance, so sklearn's nearest
    centroid over the unit-length class means of unit-length features is an oracle."""
    from sklearn.neighbors import NearestCentroid

    norm = torch.nn.functional.normalize
    classes = labels.unique().tolist()
    centroids = norm(torch.stack([norm(train[labels == c].float(), dim=1).mean(0) for c in classes]), dim=1)
    with warnings.catch_warnings():  # sklearn's spread statistics of the duplicated rows: zero, as meant
        warnings.simplefilter("ignore")
        oracle = NearestCentroid().fit(np.repeat(centroids.numpy(), 2, axis=0), np.repeat(classes, 2))
    return oracle.predict(norm(test.float(), dim=1).numpy())


def test_the_centroid_baseline_is_the_nearest_centroid_accuracy_on_the_experiments_features(tiny):
    centroid = centroid_baseline(tiny)
    assert centroid["arm"] == "centroid" and (centroid["per_class"], centroid["seed"]) == (tiny.per_class, tiny.seed)
    f = dataset_features(tiny)
    expected = (cosine_centroid_oracle(f.train, f.train_labels, f.test) == f.test_labels.numpy()).mean()
    assert centroid["test_accuracy"] == pytest.approx(expected)
    assert centroid["test_accuracy"] > 0.8  # the four blobs are separable by direction (chance: 0.25)


def test_pca_2d_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA

    x = np.random.default_rng(0).normal(size=(50, 7)) * np.arange(1, 8)
    ours = pca_2d(x)
    theirs = PCA(2).fit_transform(x)
    assert ours.shape == (50, 2)
    assert np.allclose(np.abs(ours), np.abs(theirs))
    assert np.allclose(pca_2d(-x), ours)  # the sign convention makes the map unique


def test_transplant_keeps_the_first_k_blocks_and_reinitialises_the_rest():
    source = create_backbone("test_tiny", 4, pretrained=True).blocks.state_dict()
    mixed = transplant(source, 1, "test_tiny", seed=5)
    assert set(mixed) == set(source)
    assert all(torch.equal(mixed[k], source[k]) for k in source if k.startswith("block1."))
    assert not torch.equal(mixed["block2.0.weight"], source["block2.0.weight"])
    assert torch.equal(transplant(source, 1, "test_tiny", seed=5)["block3.0.weight"], mixed["block3.0.weight"])
    # It plugs into an arm: Yosinski's AnB at depth 1.
    result = compare(replace_tiny(), arms=[Arm("AnB", init=mixed, freeze=1)])
    assert result.table.freeze_depth[0] == 1


def replace_tiny():
    from transferlab import ExperimentConfig

    return ExperimentConfig(
        dataset="test_blobs",
        backbone="test_tiny",
        per_class=4,
        freeze_depth=1,
        epochs=1,
        batch_size=8,
        test_per_class=None,
    )


def test_sweep_gives_a_tidy_table_with_gaps_and_reuses_depth_free_arms(tiny):
    class Runs(Callback):
        def __init__(self):
            self.ended = []

        def on_run_end(self, run):
            self.ended.append((run.arm.name, run.config.freeze_depth, run.config.seed))

    runs = Runs()
    # At lr 5e-2 the arms learn (the tiny settings' 3e-3 leaves every arm at chance, where any two runs look alike).
    base = replace(tiny, lr=5e-2)
    table = sweep(base, ["finetune", "scratch"], seeds=(0, 1), callbacks=[runs], per_class=[4], freeze_depth=[0, 2])
    assert len(table) == 8 and len(runs.ended) == 6, "scratch trains once per seed, not once per depth"
    assert sorted(runs.ended)[-2:] == [("scratch", 0, 0), ("scratch", 0, 1)]
    assert {"arm", "per_class", "freeze_depth", "depth", "seed", "test_accuracy", "train_accuracy", "gap"} <= set(
        table.columns
    )
    scratch = table[table.arm == "scratch"]
    assert (scratch.depth == 0).all() and set(scratch.freeze_depth) == {0, 2}
    # scratch ignores the freeze depth: the same run's row is reused, not retrained; each seed its own run.
    a = scratch.set_index(["per_class", "seed", "freeze_depth"]).test_loss
    assert (a.xs(0, level="freeze_depth") == a.xs(2, level="freeze_depth")).all() and a.nunique() == 2
    # The gap is finetune minus scratch at the same point and seed (here finetune is ahead).
    one = table[(table.per_class == 4) & (table.seed == 1) & (table.freeze_depth == 0)].set_index("arm")
    assert one.test_accuracy["finetune"] > one.test_accuracy["scratch"] > 0.25
    assert one.gap.iloc[0] == pytest.approx(one.test_accuracy["finetune"] - one.test_accuracy["scratch"])
    # One compare() at the same point gives the same numbers (sweeps are reproducible).
    direct = compare(replace(base, per_class=4, seed=1, freeze_depth=0)).table.set_index("arm")
    measured = ["test_accuracy", "test_loss"]
    assert (
        direct.loc[["finetune", "scratch"], measured].values.tolist()
        == one.loc[["finetune", "scratch"], measured].values.tolist()
    )
    # The table feeds the figures directly.
    assert np.array(plots.transfer_map(table).data[0].z, dtype=float).shape == (2, 1)
    assert len(plots.accuracy_against(table, x="per_class", log_x=True).data) == 2
    assert len(plots.train_test_gap(table).data) == 4


def test_sweep_rejects_unknown_fields_and_seed_in_the_grid(tiny):
    with pytest.raises(ConfigError):
        sweep(tiny, per_class=[1], colour=["red"])
    with pytest.raises(ConfigError):
        sweep(tiny, seed=[0, 1])


def test_sweep_without_both_arms_has_nan_gap(tiny):
    table = sweep(tiny, ["probe"], per_class=[2])
    assert table.gap.isna().all() and table.arm.tolist() == ["probe"]


def test_export_then_load_with_weights_only_predicts_the_same(tiny, tmp_path):
    config = replace(tiny, freeze_depth=0, lr=3e-2)  # a model that learned: its answers differ image to image
    result = compare(config, arms=["finetune"])
    path = export_model(result, tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)  # only tensors, strings and numbers inside
    assert raw["classes"] == list(result.data.dataset.classes) and raw["config"]["per_class"] == tiny.per_class
    classifier = load_model(path)
    images = result.data.test_images
    # The trained network's own probabilities, computed here from its input the way a run feeds it.
    model, spec = result.runs["finetune"].model, result.runs["finetune"].model.spec
    with torch.no_grad():
        expected = torch.softmax(model.eval()(tl.to_model_input(images, config.size, spec.mean, spec.std)), 1)
    torch.testing.assert_close(classifier.probabilities(images), expected, atol=1e-5, rtol=1e-4)
    preds = classifier.probabilities(images).argmax(1)
    assert torch.equal(preds, result.runs["finetune"].test_predictions.cpu()) and len(preds.unique()) >= 3
    assert classifier.predict(images[:2])[0][0] in classifier.classes
    assert classifier.test_accuracy == pytest.approx(result.accuracy("finetune"))
    with pytest.raises(ConfigError):
        export_model(result, tmp_path / "x.pt", arm="scratch")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ConfigError):
        load_model(tmp_path / "other.pt")


def test_new_figures_draw_tables():
    table = pd.DataFrame({"arm": ["finetune", "pixels"], "test_accuracy": [0.7, 0.8]})
    fig = plots.accuracy_bars(table)
    assert list(fig.data[0].y) == ["pixels", "finetune"]
    grid = plots.image_grid(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), ["a", "b"])
    assert grid.data[0].source.startswith("data:image/png;base64,")


def test_layer_transfer_names_arms_like_yosinski(tiny):
    from transferlab import layer_transfer

    a = create_backbone("test_tiny", 4, pretrained=True).blocks.state_dict()
    b = create_backbone("test_tiny", 4, pretrained=False).blocks.state_dict()
    table = layer_transfer(tiny, {"A": a, "B": b}, depths=[1, 3], seeds=(0, 1), fine_tune=["A"])
    assert len(table) == 2 * (1 + 2 * 3)
    assert set(table.arm) == {"scratch", "AnB", "AnB+", "BnB"}
    assert set(table[table.arm == "AnB"].freeze_depth) == {1, 3}
    assert (table[table.arm == "scratch"].freeze_depth == 0).all()


def test_label_noise_changes_only_training_labels(tiny):
    from transferlab import prepare_data

    clean, noisy = prepare_data(tiny), prepare_data(replace(tiny, label_noise=1.0))
    assert torch.equal(clean.train_images, noisy.train_images)
    assert (clean.train_labels != noisy.train_labels).float().mean() > 0.5  # random labels: 3 in 4 wrong
    assert torch.equal(clean.val_labels, noisy.val_labels) and torch.equal(clean.test_labels, noisy.test_labels)
    with pytest.raises(tl.ConfigError, match="label_noise"):
        tl.compare(replace(tiny, label_noise=2.0))


def test_accuracy_on_matches_the_runs_own_test_accuracy(tiny):
    result = tl.compare(replace(tiny, precision="fp32", lr=3e-2), arms=["scratch"])  # learns: 75%, chance 25%
    run, data = result.runs["scratch"], result.data
    accuracy = tl.accuracy_on(run.model, data.test_images, data.test_labels, tiny.size)
    assert accuracy == pytest.approx(run.test_accuracy, abs=1e-6) and accuracy > 0.5
    # On images the network was not trained for (inverted), it is measured anew: not the stored number.
    assert tl.accuracy_on(run.model, 255 - data.test_images, data.test_labels, tiny.size) != accuracy


def test_adapt_batchnorm_measures_the_target_and_leaves_the_weights_and_the_original_alone(tiny):
    result = tl.compare(tiny, arms=["scratch"])
    model, data = result.runs["scratch"].model, result.data
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inverted = 255 - data.val_images
    adapted = tl.adapt_batchnorm(model, inverted, tiny.size)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    bn = [m for m in adapted.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    x = tl.to_model_input(inverted, tiny.size, model.spec.mean, model.spec.std)
    first = adapted.blocks["block1"][0](x)  # the convolution before that BatchNorm
    assert torch.allclose(bn.running_mean, first.mean((0, 2, 3)), atol=1e-4)
    weights = {k: v for k, v in adapted.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert all(torch.equal(v, before[k]) for k, v in weights.items()) and not adapted.training

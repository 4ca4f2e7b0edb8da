import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from transferlab import (
    ARMS,
    Arm,
    Callback,
    ConfigError,
    ExperimentConfig,
    History,
    StopTraining,
    compare,
    feature_cache,
    plan,
)
from transferlab.device import NUMERICS, bf16_passes
from transferlab.training import features, run
from transferlab.training.features import FeatureCache


def test_records_come_in_order_and_arms_advance_together(tiny):
    result = compare(tiny)
    h = result.history
    for arm in ("finetune", "scratch"):
        mine = h[h.arm == arm]
        assert mine.split.tolist() == ["train", "val"] * 3 + ["test"]  # the test split once, at the end
        assert mine.epoch.tolist() == [1, 1, 2, 2, 3, 3, 3]
        assert mine.step.is_monotonic_increasing and mine.seconds.is_monotonic_increasing
        assert mine.images_seen.iloc[-1] == 3 * 32
    # Interleaved: each arm's epoch 1 comes before either arm's epoch 2.
    first_epoch2 = h.index[h.epoch == 2].min()
    assert (h.loc[: first_epoch2 - 1].query("split == 'val'").arm.tolist()) == ["finetune", "scratch"]
    assert set(result.table.arm) == {"finetune", "scratch"}
    assert result.table.set_index("arm").loc["finetune", "freeze_depth"] == 1


def test_same_config_and_seed_give_identical_numbers(tiny):
    a, b = compare(tiny), compare(tiny)
    pd.testing.assert_frame_equal(a.history.drop(columns="seconds"), b.history.drop(columns="seconds"))
    c = compare(replace(tiny, seed=1))
    assert not a.history.loss.equals(c.history.loss)


def test_stop_is_honoured_within_one_batch(tiny):
    stop = threading.Event()

    class StopAfter(Callback):
        def on_batch_end(self, run):
            if run.step == 2:
                stop.set()

    result = compare(replace(tiny, epochs=50), arms=["scratch"], callbacks=[StopAfter()], stop=stop)
    assert result.stopped and result.runs["scratch"].step == 2
    assert result.verdict().startswith("Stopped")


def test_a_stop_before_the_start_stops_before_caching_features(tiny):
    stop = threading.Event()
    stop.set()
    feature_cache().clear()
    result = compare(replace(tiny, freeze_depth=2), stop=stop)
    assert result.stopped and all(r.step == 0 for r in result.runs.values())
    assert feature_cache().misses == 0


def test_a_callback_can_stop_training(tiny):
    class Refuse(Callback):
        def on_batch_end(self, run):
            raise StopTraining("enough")

    result = compare(tiny, callbacks=[Refuse()])
    assert result.stopped and sum(r.step for r in result.runs.values()) == 1


def test_cached_prefix_gives_the_same_training_as_recomputing_it(tiny):
    feature_cache().clear()
    cached = compare(replace(tiny, freeze_depth=2), arms=["finetune"])
    plain = compare(replace(tiny, freeze_depth=2, cache_features=False), arms=["finetune"])
    assert cached.runs["finetune"].inputs.cached and not plain.runs["finetune"].inputs.cached
    assert torch.allclose(torch.tensor(cached.history.loss.values), torch.tensor(plain.history.loss.values), atol=1e-4)
    assert feature_cache().misses == 3  # train, validation and test features, computed once each
    compare(replace(tiny, freeze_depth=2), arms=["finetune"])
    assert feature_cache().misses == 3 and feature_cache().hits >= 3


def test_validation_and_test_features_do_not_depend_on_the_training_subset_or_seed(tiny):
    feature_cache().clear()
    for per_class, seed in [(8, 0), (8, 1), (4, 2)]:
        compare(replace(tiny, freeze_depth=2, per_class=per_class, seed=seed), arms=["finetune"])
    assert feature_cache().misses == 3 + 1 + 1  # only the training subset's features are new


def test_the_prefix_is_fingerprinted_once_per_run(tiny, monkeypatch):
    calls = []
    fingerprint = features.prefix_fingerprint
    monkeypatch.setattr(features, "prefix_fingerprint", lambda *a: calls.append(a) or fingerprint(*a))
    compare(replace(tiny, freeze_depth=2, epochs=4), arms=["finetune"])
    assert len(calls) == 1  # not once per epoch: hashing a deep prefix costs as much as an epoch


def test_bf16_runs_where_the_hardware_is_fast_at_it(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert bf16_passes(cuda) == (True, True)
    assert bf16_passes(cuda, "fp32") == bf16_passes(cpu, "fp32") == (False, False)
    assert bf16_passes(torch.device("mps")) == (False, False)
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    monkeypatch.delenv(NUMERICS, raising=False)
    assert bf16_passes(cpu) == (False, native)


def test_the_other_kind_of_cpus_numerics_can_be_forced(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv(NUMERICS, "fp32")  # as a CPU without native bf16 computes
    assert bf16_passes(cpu) == (False, False)
    monkeypatch.setenv(NUMERICS, "bf16")  # as one with it
    assert bf16_passes(cpu) == (False, True) and bf16_passes(cpu, "fp32") == (False, False)
    assert bf16_passes(torch.device("cuda")) == (True, True)  # a GPU is not a CPU kind
    monkeypatch.setenv(NUMERICS, "fast")
    with pytest.raises(ConfigError, match="must be fp32 or bf16"):
        bf16_passes(cpu)


def test_bf16_prefix_features_train_a_float32_suffix(tiny, monkeypatch):
    # Forced on, so that this path is tested on every CPU, with or without native bf16.
    monkeypatch.setattr(run, "bf16_passes", lambda device, precision: (False, precision == "auto"))
    feature_cache().clear()
    bf16 = compare(replace(tiny, freeze_depth=2), arms=["finetune"])
    assert {t.dtype for t in feature_cache()._entries.values()} == {torch.bfloat16}
    fp32 = compare(replace(tiny, freeze_depth=2, precision="fp32"), arms=["finetune"])
    assert feature_cache().misses == 6  # fp32 features are their own cache entries
    assert bf16.table.bf16[0] == "prefix+eval" and fp32.table.bf16[0] == "no"
    assert all(p.dtype == torch.float32 for p in bf16.runs["finetune"].model.parameters())
    losses = [torch.tensor(r.history.query("split == 'train'").loss.values) for r in (bf16, fp32)]
    assert torch.allclose(*losses, atol=0.05)  # rounding the features to bf16 barely moves training


def test_bf16_everywhere_as_on_cuda_trains_float32_weights(tiny, monkeypatch):
    # CUDA's setting (bf16 training too), run under CPU autocast: the same code path, no GPU needed.
    monkeypatch.setattr(run, "bf16_passes", lambda device, precision: (True, True))
    result = compare(replace(tiny, epochs=20, lr=1e-2), arms=["finetune", "scratch"])
    assert set(result.table.bf16) == {"all"}
    assert all(p.dtype == torch.float32 for p in result.runs["finetune"].model.parameters())  # autocast
    train = result.history.query("split == 'train' and arm == 'finetune'").loss
    assert train.iloc[-1] < 0.5 * train.iloc[0] and result.accuracy("finetune") > 0.6  # as in float32


def test_augmented_views_are_cached_and_cycled(tiny):
    result = compare(replace(tiny, freeze_depth=2, augment=True, augment_views=3), arms=["finetune"])
    assert result.runs["finetune"].inputs.cached
    assert result.runs["finetune"].inputs.features("train").shape[0] == 3
    assert not result.history.query("split == 'test'").accuracy.isna().any()


def test_one_augmented_view_is_augmented_and_cached_apart_from_plain_features(tiny):
    feature_cache().clear()
    plain = compare(replace(tiny, freeze_depth=2), arms=["finetune"]).runs["finetune"].inputs
    one = (
        compare(replace(tiny, freeze_depth=2, augment=True, augment_views=1), arms=["finetune"]).runs["finetune"].inputs
    )
    assert feature_cache().misses == 4  # the augmented view is its own entry, not the plain one's
    augmented = one.features("train")
    assert augmented.shape == (1, *plain.features("train").shape)
    assert not torch.equal(augmented[0], plain.features("train"))
    rows = torch.arange(4)
    assert torch.equal(one.train_batch(rows, epoch=5), augmented[0][rows].float())  # a whole image each


def test_features_too_big_for_the_cache_are_never_computed_whole(tiny, monkeypatch):
    # A run whose features would not fit runs the prefix every batch: memory stays bounded.
    config = replace(tiny, freeze_depth=2)
    small = FeatureCache(max_bytes=1000)
    monkeypatch.setattr(features, "feature_cache", lambda: small)
    result = compare(config, arms=["finetune"])
    assert not result.runs["finetune"].inputs.cached and not result.table.cached_features[0]
    assert small.misses == 0 and small.nbytes == 0
    plain = compare(replace(config, cache_features=False), arms=["finetune"])
    assert torch.allclose(torch.tensor(result.history.loss.values), torch.tensor(plain.history.loss.values))
    monkeypatch.setattr(features, "feature_cache", lambda: FeatureCache(max_bytes=2**20))
    assert compare(config, arms=["finetune"]).runs["finetune"].inputs.cached  # the same run fits in 1 MB


def test_feature_cache_is_bounded_and_evicts_least_recent():
    cache = FeatureCache(max_bytes=3 * 400)
    for key in "abc":
        cache.put(key, torch.zeros(100))  # 400 bytes each
    cache.get("a")
    cache.put("d", torch.zeros(100))
    assert cache.get("b") is None and cache.get("a") is not None
    assert not cache.put("huge", torch.zeros(1000)) and cache.nbytes <= 1200


def test_finetuning_lowers_the_loss_on_a_few_examples(tiny):
    result = compare(replace(tiny, epochs=20, lr=1e-2), arms=["finetune"])
    train = result.history.query("split == 'train'").loss
    assert train.iloc[-1] < 0.5 * train.iloc[0]
    assert result.accuracy("finetune") > 0.6  # 4 classes: chance is 0.25


def test_linear_probe_and_custom_arms(tiny):
    weights = compare(tiny, arms=["scratch"]).runs["scratch"].model.blocks.state_dict()
    transfer = Arm("transfer", init=weights, freeze=2)
    result = compare(tiny, arms=["probe", transfer])
    probe = result.runs["probe"]
    assert probe.k == 3 and probe.trainable_params == sum(p.numel() for p in probe.model.head.parameters())
    assert torch.equal(result.runs["transfer"].model.blocks["block1"][0].weight, weights["block1.0.weight"])


def test_settings_that_cannot_work_fail_before_training(tiny):
    with pytest.raises(ConfigError, match="freeze_depth must be 0..3"):
        compare(replace(tiny, freeze_depth=7))
    with pytest.raises(ConfigError, match="per_class <= 35 \\(after 5 per class are held out for validation\\)"):
        compare(replace(tiny, per_class=41))
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32"):
        compare(replace(tiny, precision="fp16"))
    with pytest.raises(ConfigError, match="unknown arm"):
        compare(tiny, arms=["finetune", "magic"])
    assert set(ARMS) == {"finetune", "scratch", "probe", "scratch_tuned", "pixels", "tfidf"}


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_arm_the_step_and_what_to_lower(tiny):
    from transferlab.errors import TrainingDiverged

    history = History()
    with pytest.raises(
        TrainingDiverged, match=r"The finetune arm's training loss became NaN or infinite at step \d+ of 12"
    ):
        compare(replace(tiny, lr=1e30, head_lr_mult=10), arms=["finetune"], callbacks=[history])
    assert all(np.isfinite(r.loss) for r in history.records)  # nothing NaN reached a chart
    with pytest.raises(
        TrainingDiverged, match=r"Lower the learning rate \(now 1e\+30\) or the head's multiplier \(now x10\)"
    ):
        compare(replace(tiny, lr=1e30, head_lr_mult=10), arms=["finetune"])


def test_a_run_beyond_the_cap_is_refused_before_training_with_what_to_change(tiny):
    with pytest.raises(
        ConfigError,
        match=r"trains 12 steps of up to 8 images = 3 epochs of 32 images: 96 images per arm, "
        r"and this server allows 50\. Choose at most 1 epochs\.$",
    ):
        compare(tiny, max_work=50)
    with pytest.raises(ConfigError, match=r"Choose at most 25 steps\.$"):
        compare(replace(tiny, epochs=None, steps=100), max_work=200)
    assert compare(tiny, arms=["finetune"], max_work=96).table.test_accuracy.notna().all()


# --- the defects that bent results, each pinned -------------------------------------------------


def test_every_training_image_is_seen_every_epoch_and_a_lone_last_image_joins_a_batch(tiny):
    assert plan(tiny, 20).batch_sizes == (8, 8, 4)
    assert plan(tiny, 17).batch_sizes == (8, 9)  # not a batch of one: BatchNorm needs two
    config = replace(tiny, per_class=4, batch_size=5, epochs=2)  # 16 images: 5 + 5 + 6
    result = compare(config, arms=["finetune", "scratch"])
    assert (result.table.steps == 6).all()
    assert (result.history.query("split == 'test'").images_seen == 2 * 16).all()


def test_a_run_ends_in_eval_mode_and_evaluation_keeps_the_mode_it_found(tiny):
    r = compare(tiny, arms=["scratch"]).runs["scratch"]
    assert not r.model.training
    r.model.train()
    r.evaluate("val")
    assert r.model.training
    r.model.eval()
    stats = [b.running_mean.clone() for b in r.model.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    r.model(torch.rand(4, 1, 16, 16).expand(-1, 3, -1, -1))  # a later forward pass...
    after = [b.running_mean for b in r.model.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(stats, after))  # ...leaves BatchNorm's statistics alone


def test_a_stopped_run_still_ends_every_arm(tiny):
    events = []

    class Watch(Callback):
        def on_run_start(self, run):
            events.append(("start", run.arm.name))

        def on_batch_end(self, run):
            if run.arm.name == "scratch" and run.step == 2:
                raise StopTraining("enough")

        def on_run_end(self, run):
            events.append(("end", run.arm.name))

    assert compare(tiny, callbacks=[Watch()]).stopped
    assert sorted(events) == [("end", "finetune"), ("end", "scratch"), ("start", "finetune"), ("start", "scratch")]


# --- the budget: steps, the same for every size and arm -----------------------------------------


def test_the_budget_in_steps_is_the_same_for_every_dataset_size(tiny):
    budget = replace(tiny, epochs=None, steps=10)
    for per_class in (1, 3, 8):
        result = compare(replace(budget, per_class=per_class))
        assert (result.table.steps == 10).all()
        assert result.history.query("split == 'val'").groupby("arm").step.max().eq(10).all()
    assert plan(ExperimentConfig(), 100).steps == plan(ExperimentConfig(), 10_000).steps == 60
    assert plan(ExperimentConfig(), 100).describe() == "60 steps of up to 32 images = 15 epochs of 100 images"
    with pytest.raises(ConfigError, match="in steps or in epochs, not both"):
        compare(replace(tiny, steps=10))


def test_an_arm_can_train_longer_than_the_others(tiny):
    long = Arm("scratch x10", "random", "none", budget_mult=10)
    result = compare(tiny, arms=["scratch", long])
    assert result.table.set_index("arm").steps.to_dict() == {"scratch": 12, "scratch x10": 120}
    assert result.history.query("split == 'val'").groupby("arm").size().tolist() == [3, 3]


def test_validation_split_comes_from_the_training_pool_apart_from_training_and_fixed(tiny):
    from transferlab import prepare_data

    a = prepare_data(tiny)
    b = prepare_data(replace(tiny, seed=3, per_class=2))
    assert not set(a.rows["val"].tolist()) & set(a.rows["train"].tolist())
    assert torch.equal(a.rows["val"], b.rows["val"]) and torch.equal(a.rows["test"], b.rows["test"])
    assert len(a.val_labels) == 4 * 5 and torch.bincount(a.val_labels).tolist() == [5] * 4


def test_the_verdict_names_the_arms_the_flag_finds_still_improving(tiny):
    # The flag itself is checked on real curves in test_stats.py; here, that the verdict says what it found.
    result = compare(replace(tiny, epochs=None, steps=8, lr=1e-3), arms=["finetune", "scratch"])
    rising = pd.DataFrame({"arm": "scratch", "split": "val", "step": range(1, 9), "accuracy": np.linspace(0.2, 0.6, 8)})
    result.history = pd.concat([result.history[result.history.arm == "finetune"], rising])
    flat = result.history[(result.history.arm == "finetune") & (result.history.split == "val")]
    result.history.loc[flat.index, "accuracy"] = 0.5
    assert result.improving() == ["scratch"]
    assert "scratch was still improving when the budget ran out" in result.verdict()


def test_with_patience_an_arm_stops_after_its_best_and_is_tested_with_its_best_weights(tiny):
    config = replace(tiny, epochs=None, steps=8, patience=2, max_steps=80)
    result = compare(config, arms=["finetune", "scratch"])
    for arm, r in result.runs.items():
        val = result.history[(result.history.arm == arm) & (result.history.split == "val")]
        best = val.accuracy.idxmax()  # the first best: later equal points are no new best
        assert r.best_step == val.step[best] and r.val_accuracy == val.accuracy.max()
        assert r.step == min(80, r.best_step + 2 * r.plan.eval_steps[0]) and r.plan.steps == 80
        # The test split was measured on the best weights: the same as evaluating them now.
        assert r.evaluate("val")[1] == pytest.approx(val.accuracy.max())
    assert "steps used: finetune" in result.verdict()
    assert "at most 80 steps" in result.runs["finetune"].plan.describe()
    with pytest.raises(ConfigError, match="set patience too"):
        compare(replace(tiny, max_steps=10))


def test_the_probe_is_fitted_to_convergence_by_the_same_rule_as_the_pixel_baseline(tiny):
    from sklearn.linear_model import LogisticRegression

    from transferlab import dataset_features

    result = compare(replace(tiny, freeze_depth=3), arms=["probe", "pixels", "finetune"])
    assert "probe, pixels: each a logistic regression fitted to convergence" in result.verdict()
    assert result.table.set_index("arm").lr.isna().tolist() == [True, True, False]
    f = dataset_features(replace(tiny, freeze_depth=3))
    oracle = LogisticRegression(max_iter=1000, C=1.0).fit(f.train.numpy(), f.train_labels.numpy())
    predictions = result.runs["probe"].test_predictions.numpy()
    assert (predictions == oracle.predict(f.test.numpy())).mean() >= 0.99  # float rounding may flip a tie
    probe = result.history[result.history.arm == "probe"]
    assert result.table.steps.iloc[0] == 0 and probe.split.tolist() == ["train", "val", "test"]
    with pytest.raises(ConfigError, match="freeze every block"):
        compare(tiny, arms=[Arm("half", freeze=1, fit="converge")])


def test_scratch_with_a_tuned_rate_keeps_the_candidate_best_on_validation(tiny):
    from transferlab.training.config import TUNED_LRS

    result = compare(tiny, arms=["scratch", "scratch_tuned"])
    tuned = result.runs["scratch_tuned"]
    vals = [c.val_accuracy for c in tuned.candidates]
    assert tuned.chosen is tuned.candidates[int(np.argmax(vals))]
    row = result.table.set_index("arm").loc["scratch_tuned"]
    assert row.lr == pytest.approx(tiny.lr * TUNED_LRS[int(np.argmax(vals))]) and row.lr_tried.count(":") == 4
    assert row.seconds == pytest.approx(sum(c.seconds for c in tuned.candidates), abs=0.05)
    # The candidate at the config's own rate is the plain scratch arm, step for step.
    plain = tuned.candidates[TUNED_LRS.index(1.0)]
    assert plain.test_accuracy == result.runs["scratch"].test_accuracy
    records = result.history[result.history.arm == "scratch_tuned"]
    assert records.split.tolist().count("test") == 1 and records.accuracy.iloc[-1] == row.test_accuracy


def test_the_pixels_arm_is_logistic_regression_on_raw_pixels(tiny):
    from sklearn.linear_model import LogisticRegression

    result = compare(tiny, ("finetune", "pixels"))
    row = result.table.set_index("arm").loc["pixels"]
    flat = lambda images: images.reshape(len(images), -1).float().numpy() / 255  # noqa: E731
    data = result.data
    oracle = LogisticRegression(max_iter=1000).fit(flat(data.train_images.cpu()), data.train_labels.cpu().numpy())
    expected = (oracle.predict(flat(data.test_images.cpu())) == data.test_labels.cpu().numpy()).mean()
    assert row.test_accuracy == pytest.approx(expected, abs=1 / len(data.test_labels)) and row.test_accuracy > 0.9
    assert row.trainable_params == 0 and result.runs["pixels"].test_predictions.shape == result.data.test_labels.shape
    records = result.history[result.history.arm == "pixels"]
    assert list(records.split) == ["train", "val", "test"] and set(records.step) == {result.runs["finetune"].plan.steps}
    with pytest.raises(ConfigError, match="does not apply to image data; use pixels"):
        compare(tiny, ("tfidf",))


def test_every_arm_writes_a_row_of_the_same_shape(tiny):
    from transferlab.training.arm_run import ROW, arm_row

    result = compare(replace(tiny, freeze_depth=3), arms=["finetune", "probe", "pixels", "scratch_tuned"])
    assert set(ROW) <= set(result.table.columns)
    assert all(c in ROW or c.startswith("change:") for c in result.table.columns)
    table = result.table.set_index("arm")
    # Steps are optimiser steps: none for a fit in one go, network or baseline alike.
    assert table.steps.to_dict() == {"finetune": result.runs["finetune"].plan.steps, "probe": 0, "pixels": 0,
                                     "scratch_tuned": result.runs["scratch_tuned"].chosen.step}  # fmt: skip
    # What a baseline lacks says so; the fits in one go are measured where the budget ends.
    assert (table.loc["pixels", "backbone"], table.loc["pixels", "trainable_params"]) == ("none", 0)
    end = result.runs["finetune"].plan.steps
    for arm in ("probe", "pixels"):
        assert set(result.history[result.history.arm == arm].step) == {end}
    with pytest.raises(KeyError, match="add it to ROW"):
        arm_row(result.runs["finetune"], colour="red")

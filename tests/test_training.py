import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from transferlab import ARMS, Arm, Callback, ConfigError, History, StopTraining, compare, feature_cache, training
from transferlab.features import FeatureCache
from transferlab.training import bf16_passes


def test_records_come_in_order_and_arms_advance_together(tiny):
    result = compare(tiny)
    h = result.history
    for arm in ("finetune", "scratch"):
        mine = h[h.arm == arm]
        assert mine.split.tolist() == ["train", "eval"] * 3 + ["test"]
        assert mine.epoch.tolist() == [1, 1, 2, 2, 3, 3, 3]
        assert mine.step.is_monotonic_increasing and mine.seconds.is_monotonic_increasing
        assert mine.images_seen.iloc[-1] == 3 * 32
    # Interleaved: each arm's epoch 1 comes before either arm's epoch 2.
    first_epoch2 = h.index[h.epoch == 2].min()
    assert (h.loc[: first_epoch2 - 1].query("split == 'eval'").arm.tolist()) == ["finetune", "scratch"]
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
    assert cached.runs["finetune"].cached and not plain.runs["finetune"].cached
    assert torch.allclose(torch.tensor(cached.history.loss.values), torch.tensor(plain.history.loss.values), atol=1e-4)
    assert feature_cache().misses == 2  # train and test features, computed once each
    compare(replace(tiny, freeze_depth=2), arms=["finetune"])
    assert feature_cache().misses == 2 and feature_cache().hits >= 2


def test_the_prefix_is_fingerprinted_once_per_run(tiny, monkeypatch):
    calls = []
    fingerprint = training.prefix_fingerprint
    monkeypatch.setattr(training, "prefix_fingerprint", lambda *a: calls.append(a) or fingerprint(*a))
    compare(replace(tiny, freeze_depth=2, epochs=4), arms=["finetune"])
    assert len(calls) == 1  # not once per epoch: hashing a deep prefix costs as much as an epoch


def test_bf16_runs_where_the_hardware_is_fast_at_it():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert bf16_passes(cuda) == (True, True)
    assert bf16_passes(cuda, "fp32") == bf16_passes(cpu, "fp32") == (False, False)
    assert bf16_passes(torch.device("mps")) == (False, False)
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert bf16_passes(cpu) == (False, native)


def test_bf16_prefix_features_train_a_float32_suffix(tiny, monkeypatch):
    # Forced on, so that this path is tested on every CPU, with or without native bf16.
    monkeypatch.setattr(training, "bf16_passes", lambda device, precision: (False, precision == "auto"))
    feature_cache().clear()
    bf16 = compare(replace(tiny, freeze_depth=2), arms=["finetune"])
    assert {t.dtype for t in feature_cache()._entries.values()} == {torch.bfloat16}
    fp32 = compare(replace(tiny, freeze_depth=2, precision="fp32"), arms=["finetune"])
    assert feature_cache().misses == 4  # fp32 features are their own cache entries
    assert bf16.table.bf16[0] == "prefix+eval" and fp32.table.bf16[0] == "no"
    assert all(p.dtype == torch.float32 for p in bf16.runs["finetune"].model.parameters())
    losses = [torch.tensor(r.history.query("split == 'train'").loss.values) for r in (bf16, fp32)]
    assert torch.allclose(*losses, atol=0.05)  # rounding the features to bf16 barely moves training


def test_bf16_everywhere_as_on_cuda_trains_float32_weights(tiny, monkeypatch):
    # CUDA's setting (bf16 training too), run under CPU autocast: the same code path, no GPU needed.
    monkeypatch.setattr(training, "bf16_passes", lambda device, precision: (True, True))
    result = compare(replace(tiny, epochs=20, lr=1e-2), arms=["finetune", "scratch"])
    assert set(result.table.bf16) == {"all"}
    assert all(p.dtype == torch.float32 for p in result.runs["finetune"].model.parameters())  # autocast
    train = result.history.query("split == 'train' and arm == 'finetune'").loss
    assert train.iloc[-1] < 0.5 * train.iloc[0] and result.accuracy("finetune") > 0.6  # as in float32


def test_augmented_views_are_cached_and_cycled(tiny):
    result = compare(replace(tiny, freeze_depth=2, augment=True, augment_views=3), arms=["finetune"])
    assert result.runs["finetune"].cached
    assert not result.history.query("split == 'test'").accuracy.isna().any()


def test_features_too_big_for_the_cache_are_never_computed_whole(tiny, monkeypatch):
    # A run whose features would not fit runs the prefix every batch: memory stays bounded.
    config = replace(tiny, freeze_depth=2)
    small = FeatureCache(max_bytes=1000)
    monkeypatch.setattr(training, "feature_cache", lambda: small)
    result = compare(config, arms=["finetune"])
    assert not result.runs["finetune"].cached and not result.table.cached_features[0]
    assert small.misses == 0 and small.nbytes == 0
    plain = compare(replace(config, cache_features=False), arms=["finetune"])
    assert torch.allclose(torch.tensor(result.history.loss.values), torch.tensor(plain.history.loss.values))
    monkeypatch.setattr(training, "feature_cache", lambda: FeatureCache(max_bytes=2**20))
    assert compare(config, arms=["finetune"]).runs["finetune"].cached  # the same run fits in 1 MB


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
    with pytest.raises(ConfigError, match="per_class <= 40"):
        compare(replace(tiny, per_class=41))
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32"):
        compare(replace(tiny, precision="fp16"))
    with pytest.raises(ConfigError, match="unknown arm"):
        compare(tiny, arms=["finetune", "magic"])
    assert set(ARMS) == {"finetune", "scratch", "probe"}


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
        match=r"32 images x 3 epochs = 96 images per arm; this server allows 50\. "
        r"Choose at most 4 images per class, or at most 1 epoch\.$",
    ):
        compare(tiny, max_work=50)
    assert compare(tiny, arms=["finetune"], max_work=96).table.test_accuracy.notna().all()

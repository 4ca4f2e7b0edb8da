import pytest
import torch
import torch.nn.functional as F

from transferlab import ConfigError, create_backbone, freeze_to


def _bn_stats(module):
    return [b.clone() for name, b in module.named_buffers() if "running" in name]


def _train_steps(model, steps=3):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(8, 3, 16, 16, generator=g) * 3 + 1, torch.randint(0, 4, (8,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def test_frozen_blocks_keep_weights_and_batchnorm_statistics():
    model = create_backbone("test_tiny", 4, pretrained=True)
    summary = freeze_to(model, 2)
    frozen = [model.blocks["block1"], model.blocks["block2"]]
    before = [[p.clone() for p in b.parameters()] + _bn_stats(b) for b in frozen]
    trained_before = [p.clone() for p in model.blocks["block3"].parameters()] + _bn_stats(model.blocks["block3"])
    _train_steps(model)
    for block, saved in zip(frozen, before):
        assert not block.training  # stays in eval mode after model.train()
        assert all(torch.equal(a, b) for a, b in zip([*block.parameters(), *_bn_stats(block)], saved))
    after = [*model.blocks["block3"].parameters(), *_bn_stats(model.blocks["block3"])]
    assert all(not torch.equal(a, b) for a, b in zip(after, trained_before))
    assert summary.trainable.tolist() == [False, False, True, True]


def test_trainable_counts_match_the_parameters_that_get_gradients():
    model = create_backbone("efficientnet_lite0", 10, pretrained=False)
    summary = freeze_to(model, 4)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summary.loc[summary.trainable, "parameters"].sum() == trainable
    assert summary.parameters.sum() == sum(p.numel() for p in model.parameters())
    assert summary.block.tolist()[:5] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert summary.trainable.tolist() == [False] * 4 + [True] * 6
    assert freeze_to(model, 9).trainable.tolist() == [False] * 9 + [True]  # linear probe: head only
    assert freeze_to(model, 0).trainable.all()


def test_unfrozen_batchnorm_statistics_drift_when_asked():
    model = create_backbone("test_tiny", 4, pretrained=True)
    freeze_to(model, 2, freeze_bn_stats=False)
    before = _bn_stats(model.blocks["block1"])
    _train_steps(model, 1)
    assert not all(torch.equal(a, b) for a, b in zip(_bn_stats(model.blocks["block1"]), before))
    pretrained = create_backbone("test_tiny", 4).blocks["block1"].parameters()
    assert all(torch.equal(a, b) for a, b in zip(model.blocks["block1"].parameters(), pretrained))


def test_freeze_depth_out_of_range_names_the_range():
    with pytest.raises(ConfigError, match="0 .* to 3"):
        freeze_to(create_backbone("test_tiny", 4), 4)


def test_block_change_is_zero_for_frozen_blocks_and_drawn_as_frozen(tiny):
    from transferlab import compare, plots

    result = compare(tiny, arms=["finetune", "scratch"])
    table = result.table.set_index("arm")
    blocks = [c for c in table.columns if c.startswith("change:")]
    assert blocks == ["change:block1", "change:block2", "change:block3", "change:head"]
    assert table.loc["finetune", "change:block1"] == 0, "block 1 is frozen at k = 1: it did not move"
    assert (table.loc["finetune", blocks[1:]] > 0).all() and (table.loc["scratch", blocks] > 0).all()
    fig = plots.weight_change(result.table)
    assert fig.data[0].text[0] == "frozen" and fig.data[1].text[0] != "frozen"

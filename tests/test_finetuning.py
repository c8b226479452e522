"""landmarklib.transfer fine-tuning: trunk and top, members, ensemble, the full recipe."""

from __future__ import annotations

import math

import pytest
import torch

from landmarklib import data, recipes, training, transfer
from landmarklib.backbones import count_parameters, create_backbone


def _tiny_loaders(spec):
    return data.make_loaders(data.tiny_data_root(), size=spec.input_size, mean=spec.mean,
                             std=spec.std, in_memory=False, num_workers=0, progress=False,
                             augment=False, batch_size=8)


@pytest.mark.parametrize("name, top_blocks", [
    ("efficientnet_lite0", 3),  # blocks[6], then conv_head, bn2
    ("resnet18", 1),  # layer4's last BasicBlock
])
def test_top_of_trunk_is_the_backbone(name, top_blocks):
    torch.manual_seed(0)
    backbone, spec = create_backbone(name, pretrained=False)
    backbone.eval()
    trunk, top = transfer.split_backbone(backbone, top_blocks)
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        activations = trunk(x)
        assert activations.dim() == 4
        features = top(activations)
        assert torch.allclose(features, backbone(x), atol=1e-5)
    assert features.shape == (2, spec.num_features)


def test_lite0_top_is_its_last_block_and_head_convolution():
    backbone, _ = create_backbone("efficientnet_lite0", pretrained=False)
    trunk, top = transfer.split_backbone(backbone, top_blocks=3)
    assert top[0] is backbone.blocks[6] and top[1] is backbone.conv_head and top[2] is backbone.bn2
    assert trunk[-1] is backbone.blocks[5]
    # blocks[6]: 192*1152 + 9*1152 + 1152*320 and 3 BatchNorms; conv_head 320*1280; bn2
    assert sum(p.numel() for p in top.parameters()) == 1_017_600
    with torch.inference_mode():
        assert trunk.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 192, 7, 7)


@pytest.mark.parametrize("name", ["vgg19", "efficientnet_b0"])
def test_backbones_that_flatten_inside_cannot_be_cut(name):
    backbone, _ = create_backbone(name, pretrained=False)
    with pytest.raises(ValueError, match="cannot cut"):
        transfer.split_backbone(backbone)


def test_top_blocks_out_of_range():
    backbone, _ = create_backbone("efficientnet_lite0", pretrained=False)
    for bad in (0, 100):
        with pytest.raises(ValueError, match="top_blocks must be between 1 and"):
            transfer.split_backbone(backbone, bad)


def test_finetuned_model_trains_only_the_tops_and_averages_members():
    torch.manual_seed(0)
    model = transfer.build_finetuned_model(7, hidden=16, members=2, pretrained=False)
    trainable, frozen = count_parameters(model)
    head = 1280 * 16 + 16 + 16 * 7 + 7
    assert trainable == 2 * (1_017_600 + head)
    assert frozen == 3_371_008 - 1_017_600  # the trunk
    assert model.members[0].top[0] is not model.members[1].top[0]  # copies, not shared
    trunk_before = {k: v.clone() for k, v in model.trunk.state_dict().items()}
    bn = model.members[0].top[2]
    running_mean = bn.running_mean.clone()

    images, labels = torch.randn(6, 3, 96, 96), torch.arange(6) % 7
    optimizer = training.make_optimizer(model, lr=1e-2)
    model.train()
    assert not model.trunk.training and not bn.training and model.members[0].head.training
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(model(images), labels).backward()
        optimizer.step()
    assert all(torch.equal(trunk_before[k], v) for k, v in model.trunk.state_dict().items())
    assert torch.equal(bn.running_mean, running_mean)  # ImageNet statistics kept

    model.eval()
    with torch.inference_mode():
        activations = model.trunk(images)
        each = [member(activations).exp() for member in model.members]
        expected = ((each[0] + each[1]) / 2).log()
        out = model(images)
    assert out.shape == (6, 7)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(out.exp().sum(1), torch.ones(6), atol=1e-5)
    single = transfer.FineTunedModel(model.trunk, [model.members[0]], model.spec)
    with torch.inference_mode():
        assert torch.allclose(single(images), model.members[0](activations), atol=1e-6)


def test_mirrored_view_lines_up_with_the_photos():
    backbone, spec = create_backbone("efficientnet_lite0", pretrained=False)
    loaders = _tiny_loaders(spec)
    plain = torch.cat([x for x, _ in transfer.in_order(loaders.train)])
    mirrored = torch.cat([x for x, _ in transfer.in_order(loaders.train, mirrored=True)])
    assert plain.shape == (56, 3, 224, 224)
    assert torch.equal(mirrored, plain.flip(-1))
    labels = torch.cat([y for _, y in transfer.in_order(loaders.train)])
    assert labels.tolist() == sorted(labels.tolist())  # dataset order, not shuffled


def test_random_view_draws_every_view():
    views = [torch.zeros(5, 2), torch.ones(5, 2)]
    dataset = transfer.RandomView(views, torch.arange(5))
    torch.manual_seed(0)
    drawn = {float(dataset[3][0][0]) for _ in range(50)}
    assert drawn == {0.0, 1.0} and int(dataset[3][1]) == 3
    with pytest.raises(ValueError, match="same shape"):
        transfer.RandomView([torch.zeros(5, 2), torch.zeros(4, 2)], torch.arange(5))


def test_run_in_batches_matches_one_call():
    layer = torch.nn.Linear(8, 3)
    x = torch.randn(70, 8)
    out = transfer.run_in_batches(layer, x, batch_size=16, bfloat16=False)
    with torch.inference_mode():
        assert torch.allclose(out, layer(x), atol=1e-6)
    assert not out.is_inference()


def test_recipe_fine_tunes_and_saves_an_ensemble(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path / "cache"))
    recipe = recipes.TransferRecipe(hidden=32, epochs=6, finetune_epochs=2, batch_size=16,
                                    members=2)
    result = recipes.train_transfer(data.tiny_data_root(), tmp_path / "m.pt", recipe,
                                    progress=False)
    # Real ImageNet features: the 7 tiny landmarks are easy (21 test photos).
    assert result.frozen.total == result.test.total == 21
    assert result.frozen.accuracy >= 0.8 and result.test.accuracy >= 0.8
    assert len(result.history) == 2
    record = torch.load(result.model_path, weights_only=True)
    assert record["architecture"] == {"kind": "finetuned", "backbone": "efficientnet_lite0",
                                      "hidden": 32, "dropout": 0.5, "members": 2,
                                      "top_blocks": 3}
    assert math.isclose(record["metrics"]["test_accuracy"], result.test.accuracy)
    assert "frozen_test_accuracy" in record["metrics"]
    # The trunk's activations were cached: train, train mirrored, valid, test.
    cached = sorted((tmp_path / "cache" / "features").glob("efficientnet_lite0-trunk3-*.pt"))
    assert len(cached) == 4


def test_finetuned_model_file_round_trip_without_timm(tmp_path):
    """Saved and loaded back: the same outputs, the trunk rebuilt from efficientnet_lite.py."""
    from landmarklib import export
    from landmarklib.efficientnet_lite import EfficientNetLite0

    torch.manual_seed(0)
    model = transfer.build_finetuned_model(3, hidden=8, members=2, pretrained=False).eval()
    path = export.save_model(tmp_path / "f.pt", model, ["a", "b", "c"], 224, (0.5,) * 3,
                             (0.5,) * 3)
    loaded = export.load_model(path).model
    assert isinstance(loaded, transfer.FineTunedModel) and len(loaded.members) == 2
    assert isinstance(loaded.trunk[0], torch.nn.Conv2d)
    assert not any(isinstance(m, EfficientNetLite0) for m in loaded.modules())  # parts only
    assert loaded.config == model.config
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)


def test_splittable_lists_exactly_the_backbones_that_can_be_cut():
    from landmarklib.backbones import BACKBONES

    for name in BACKBONES:
        backbone, _ = create_backbone(name, pretrained=False)
        if name in transfer.SPLITTABLE:
            transfer.split_backbone(backbone, 1)
        else:
            with pytest.raises(ValueError, match="cannot cut"):
                transfer.split_backbone(backbone, 1)


def test_bad_member_counts_and_backbones_fail_before_any_work(monkeypatch, tmp_path):
    import landmarklib.backbones

    monkeypatch.setattr(landmarklib.backbones, "create_backbone",
                        lambda *a, **k: pytest.fail("built a backbone before checking"))
    with pytest.raises(ValueError, match="vgg19 cannot be cut into trunk and top"):
        transfer.build_finetuned_model(7, "vgg19")
    with pytest.raises(ValueError, match="at least 1 member, not 0"):
        transfer.build_finetuned_model(7, members=0)
    monkeypatch.setattr(data, "make_loaders", lambda *a, **k: pytest.fail("loaded data"))
    with pytest.raises(ValueError, match="members must be 0"):
        recipes.train_transfer(tmp_path, recipe=recipes.TransferRecipe(members=-1))
    with pytest.raises(ValueError, match="vgg19 cannot be fine-tuned here"):
        recipes.train_transfer(tmp_path, recipe=recipes.TransferRecipe(backbone="vgg19"))


def test_cli_members_must_not_be_negative(capsys):
    from landmarklib import cli

    with pytest.raises(SystemExit) as usage:
        cli.main(["train", "transfer", "--members", "-1"])
    assert usage.value.code == 2
    assert "must be at least 0, got -1" in capsys.readouterr().err

"""landmarklib.transfer.models: frozen backbone and head, trunk and top, fine-tuned members."""

from __future__ import annotations

import pytest
import torch

from landmarklib import data, training, transfer
from landmarklib.backbones import create_backbone
from landmarklib.models import count_parameters


def _tiny_loaders(spec, **kwargs):
    return data.make_loaders(data.tiny_data_root(), size=spec.input_size, mean=spec.mean,
                             std=spec.std, in_memory=False, num_workers=0, progress=False,
                             **kwargs)


def test_only_the_head_trains_and_the_backbone_is_unchanged():
    torch.manual_seed(0)
    model = transfer.build_transfer_model(7, hidden=32)
    trainable, frozen = count_parameters(model)
    head_size = sum(p.numel() for p in model.head.parameters())
    assert trainable == head_size == 1280 * 32 + 32 + 32 * 7 + 7
    assert frozen == sum(p.numel() for p in model.backbone.parameters()) == 3_371_008
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = [p.clone() for p in model.head.parameters()]

    images = torch.randn(8, 3, 96, 96)
    labels = torch.arange(8) % 7
    optimizer = training.make_optimizer(model, lr=1e-2)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == head_size
    model.train()
    assert not model.backbone.training  # BatchNorm statistics stay ImageNet's
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(model(images), labels).backward()
        optimizer.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.head.parameters()))


def test_head_shapes():
    head = transfer.classifier_head(1280, 50, hidden=256, dropout=0.5)
    out = head.eval()(torch.randn(4, 1280))
    assert out.shape == (4, 50)
    assert torch.allclose(out.exp().sum(1), torch.ones(4))
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear", "LogSoftmax"]
    assert len(transfer.classifier_head(1280, 50, hidden=0)) == 3


def test_unfreeze_last_opens_only_the_last_blocks():
    model = transfer.build_transfer_model(7, pretrained=False)
    opened = transfer.unfreeze_last(model, blocks=2)
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert opened == sum(p.numel() for p in model.backbone.parameters() if p.requires_grad) > 0
    assert all(n.startswith(("conv_head", "bn2")) for n in trainable)
    model.train()
    assert model.backbone.training  # no longer frozen: BatchNorm may adapt


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


def test_splittable_lists_exactly_the_backbones_that_can_be_cut():
    from landmarklib.backbones import BACKBONES

    for name in BACKBONES:
        backbone, _ = create_backbone(name, pretrained=False)
        if name in transfer.SPLITTABLE:
            transfer.split_backbone(backbone, 1)
        else:
            with pytest.raises(ValueError, match="cannot cut"):
                transfer.split_backbone(backbone, 1)

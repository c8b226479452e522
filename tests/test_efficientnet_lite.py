"""landmarklib.efficientnet_lite: the same network as timm's tf_efficientnet_lite0."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from landmarklib.efficientnet_lite import EfficientNetLite0, same_padding


@pytest.fixture(scope="module")
def timm_lite0() -> nn.Module:
    """timm's Lite0 without classifier, random weights and random BatchNorm statistics (so
    that a BatchNorm loaded into the wrong place, or a wrong epsilon, shows)."""
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.2, 1.0)
            module.bias.data.normal_(0.0, 0.2)
            module.running_mean.normal_(0.0, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def ours(timm_lite0) -> nn.Module:
    model = EfficientNetLite0()
    model.load_state_dict(timm_lite0.state_dict(), strict=True)
    return model.eval()


def test_same_module_tree_and_weights_names(timm_lite0, ours):
    assert [name for name, _ in ours.named_children()] == [
        "conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool", "classifier"]
    assert [name for name, _ in ours.named_modules()] == [
        name for name, _ in timm_lite0.named_modules()]
    # Same layer kinds too (the root's class name differs: EfficientNet).
    assert [type(m).__name__ for _, m in ours.named_modules()][1:] == [
        type(m).__name__ for _, m in timm_lite0.named_modules()][1:]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in timm_lite0.state_dict().items()}
    assert ours.num_features == timm_lite0.num_features == 1280


@pytest.mark.parametrize("height, width", [(224, 224), (160, 160), (200, 240), (33, 17)])
def test_same_output_as_timm(timm_lite0, ours, height, width):
    torch.manual_seed(1)
    images = torch.randn(2, 3, height, width)
    with torch.inference_mode():
        expected, got = timm_lite0(images), ours(images)
    assert got.shape == (2, 1280) and got.dtype == torch.float32
    assert expected.std() > 0.1  # not all saturated at ReLU6's 6 or 0
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_same_output_in_training_mode(timm_lite0, ours):
    """BatchNorm in training mode (batch statistics, running statistics updated), as when the
    last blocks are fine-tuned."""
    import copy

    theirs, mine = copy.deepcopy(timm_lite0).train(), copy.deepcopy(ours).train()
    images = torch.randn(4, 3, 96, 96)
    torch.testing.assert_close(mine(images), theirs(images), atol=1e-5, rtol=1e-5)
    for (name, a), (_, b) in zip(mine.state_dict().items(), theirs.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6, msg=name)


def test_children_in_order_are_the_network(ours):
    """conv_stem, bn1, blocks[0..6], conv_head, bn2, global_pool run one after the other give
    the forward pass, so the network can be cut into a trunk and a top between any two."""
    parts = []
    for name, child in ours.named_children():
        parts.extend(child.children() if name == "blocks" else [child])
    assert len(parts) == 2 + 7 + 4
    trunk, top = nn.Sequential(*parts[:2 + 6]), nn.Sequential(*parts[2 + 6:])
    images = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        middle = trunk(images)
        assert middle.shape == (2, 192, 4, 4)
        torch.testing.assert_close(top(middle), ours(images), atol=0, rtol=0)


def test_same_padding_is_tensorflows():
    # TensorFlow: output ceil(size / stride), padding (out - 1) * stride + k - size, at least 0.
    assert same_padding(224, 3, 2) == 1  # 0 on top, 1 at the bottom
    assert same_padding(225, 3, 2) == 2
    assert same_padding(7, 5, 2) == 4
    assert same_padding(1, 3, 2) == 2


def test_imagenet_weights_give_timms_features():
    """The shipped ImageNet weights (renamed for timm) load into this network as they are."""
    from landmarklib.backbones import load_lite0_imagenet

    full = load_lite0_imagenet()
    state = {k: v for k, v in full.state_dict().items() if not k.startswith("classifier.")}
    ours = EfficientNetLite0()
    ours.load_state_dict(state, strict=True)
    ours.eval()
    torch.manual_seed(2)
    images = torch.randn(2, 3, 224, 224).clamp(-1, 1)
    with torch.inference_mode():
        expected = full.forward_head(full.forward_features(images), pre_logits=True)
        torch.testing.assert_close(ours(images), expected, atol=1e-5, rtol=1e-5)

"""landmarklib.models: the scratch CNN, the too-small CNN, weight initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from landmarklib.models import (
    LandmarkCNN,
    conv_block,
    count_parameters,
    init_weights,
    too_small_cnn,
)


@pytest.mark.parametrize(("n_classes", "size"), [(50, 128), (44, 96), (7, 32), (3, (48, 80))])
def test_landmark_cnn_outputs_log_probabilities(n_classes, size):
    torch.manual_seed(0)
    height, width = (size, size) if isinstance(size, int) else size
    model = LandmarkCNN(n_classes).eval()
    out = model(torch.randn(4, 3, height, width))
    assert out.shape == (4, n_classes)
    assert out.dtype == torch.float32
    assert (out <= 0).all()
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(4))


def test_landmark_cnn_defaults_and_layers():
    model = LandmarkCNN()
    assert model.n_classes == 50
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64, 128, 128, 256, 256]
    assert len(norms) == len(convs)  # BatchNorm after every convolution
    assert convs[0].stride == (2, 2)
    # The last two layers: the linear classifier (no BatchNorm, no ReLU after it), LogSoftmax.
    assert isinstance(model.classifier[-2], nn.Linear)
    assert isinstance(model.classifier[-1], nn.LogSoftmax)
    assert any(isinstance(m, nn.Dropout) for m in model.classifier)
    assert model.classifier[-2].in_features == 256


def test_landmark_cnn_width_and_depth_are_configurable():
    model = LandmarkCNN(10, widths=(8, 16, 32, 64, 128), convs_per_stage=1, dropout=0.5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 128]
    assert model.classifier[2].p == 0.5
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    deeper = LandmarkCNN(10, widths=(8, 16), convs_per_stage=3)
    assert [m.out_channels for m in deeper.modules() if isinstance(m, nn.Conv2d)] == [8, 16, 16, 16]
    with pytest.raises(ValueError, match="at least 2"):
        LandmarkCNN(10, widths=(32,))
    with pytest.raises(ValueError, match="1 convolution"):
        LandmarkCNN(10, convs_per_stage=0)


def test_landmark_cnn_rejects_too_small_images():
    model = LandmarkCNN(5)
    with pytest.raises(ValueError, match="too small"):
        model(torch.randn(1, 3, 4, 4))


def test_conv_block_shapes():
    block = conv_block(3, 8, stride=2)
    assert block(torch.randn(2, 3, 33, 32)).shape == (2, 8, 17, 16)
    assert block[0].bias is None


def test_too_small_cnn_is_tiny_and_outputs_log_probabilities():
    model = too_small_cnn(44)
    out = model(torch.randn(3, 3, 64, 64))
    assert out.shape == (3, 44)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(3))
    assert count_parameters(model)[0] < 300
    assert count_parameters(LandmarkCNN(44))[0] > 100 * count_parameters(model)[0]


def _conv_and_linear(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_custom_init_std_is_one_over_sqrt_fan_in():
    model = init_weights(LandmarkCNN(50, widths=(32, 64, 128, 256)), "custom", seed=0)
    for layer in _conv_and_linear(model):
        fan_in = layer.weight[0].numel()
        expected = 1 / math.sqrt(fan_in)
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.1), layer
        assert layer.weight.mean().abs().item() < 0.2 * expected
        if layer.bias is not None:
            assert (layer.bias == 0).all()


def test_default_init_is_pytorch_kaiming_uniform():
    model = init_weights(LandmarkCNN(50), "default", seed=0)
    for layer in _conv_and_linear(model):
        fan_in = layer.weight[0].numel()
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) gives U(-bound, bound)
        assert layer.weight.abs().max().item() <= bound
        assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_init_is_seeded_in_place_and_resets_batchnorm():
    model = LandmarkCNN(7)
    bn = model.features[0][1]
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.running_mean.fill_(5.0)
    assert init_weights(model, "custom", seed=1) is model
    assert (bn.weight == 1).all() and (bn.running_mean == 0).all()
    first = [p.clone() for p in model.parameters()]
    init_weights(model, "default", seed=1)
    init_weights(model, "custom", seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, model.parameters()))
    init_weights(model, "custom", seed=2)
    assert not torch.equal(first[0], next(model.parameters()))


def test_init_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="custom"):
        init_weights(LandmarkCNN(7), "xavier")

"""landmarklib.explain: Grad-CAM against pytorch-grad-cam, the randomisation sanity check,
feature maps, filters and the overlay."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from matplotlib import cbook
from torch import nn

from landmarklib import backbones, explain, models, transfer
from landmarklib.data import eval_transform, tiny_data_root
from landmarklib.images import open_image

LITE0 = backbones.BACKBONES["efficientnet_lite0"]


def photos(size: int, mean=LITE0.mean, std=LITE0.std, count: int = 4) -> torch.Tensor:
    """``count`` real photos of the tiny test split, one per class, normalised."""
    paths = sorted((tiny_data_root() / "test").glob("*/*.jpg"))[::3][:count]
    return torch.stack([eval_transform(size, mean, std)(open_image(p)) for p in paths])


@pytest.fixture(scope="module")
def scratch() -> models.LandmarkCNN:
    return models.init_weights(models.LandmarkCNN(n_classes=7), "default", seed=0).eval()


@pytest.fixture(scope="module")
def lite0_transfer() -> transfer.TransferModel:
    torch.manual_seed(0)
    return transfer.build_transfer_model(7, "efficientnet_lite0", hidden=64).eval()


@pytest.fixture(scope="module")
def hopper() -> torch.Tensor:
    """Matplotlib's photo of Grace Hopper as the ImageNet Lite0 sees it, (1, 3, 224, 224)."""
    photo = open_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return eval_transform(224, LITE0.mean, LITE0.std)(photo)[None]


@pytest.fixture(scope="module")
def imagenet_lite0() -> nn.Module:
    return backbones.load_lite0_imagenet()


def reference(model: nn.Module, layer: str, images: torch.Tensor, classes) -> np.ndarray:
    """pytorch-grad-cam's GradCAM at ``layer`` (a name in ``model.named_modules()``), on a copy
    of ``model`` whose LogSoftmax layers are identities, so that its target is the logit."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    logits_model = copy.deepcopy(model).eval()
    for module in list(logits_model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.LogSoftmax):
                setattr(module, name, nn.Identity())
    with GradCAM(logits_model, [logits_model.get_submodule(layer)]) as cam:
        # An input that requires a gradient: with a frozen backbone, nothing else would.
        return cam(images.clone().requires_grad_(True),
                   [ClassifierOutputTarget(int(c)) for c in classes])


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(m._backward_pre_hooks) for m in model.modules())


# ------------------------------------------------------------------ the reference


def test_matches_pytorch_grad_cam_on_the_scratch_cnn(scratch):
    images = photos(128, mean=(0.5,) * 3, std=(0.25,) * 3)
    ours = explain.explain_predictions(scratch, images)
    assert ours.heatmaps.shape == (4, 128, 128)
    for classes in (ours.classes, torch.tensor([0, 3, 5, 6])):
        expected = reference(scratch, "features.9", images, classes)
        got = explain.grad_cam(scratch, images, classes).numpy()
        assert np.abs(got - expected).max() < 1e-3


def test_matches_pytorch_grad_cam_on_a_lite0_transfer_model(lite0_transfer):
    images = photos(224, count=2)
    classes = explain.explain_predictions(lite0_transfer, images).classes
    expected = reference(lite0_transfer, "backbone.bn2", images, classes)
    assert np.abs(explain.grad_cam(lite0_transfer, images).numpy() - expected).max() < 1e-3


def test_the_score_is_the_logit_not_the_log_probability(scratch):
    """pytorch-grad-cam on the unchanged model (whose output is log-probabilities) gives
    other heatmaps: the choice of score matters, and ours is the logit."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    images = photos(128, mean=(0.5,) * 3, std=(0.25,) * 3)
    targets = [ClassifierOutputTarget(c) for c in (0, 3, 5, 6)]
    unchanged = copy.deepcopy(scratch)  # GradCAM leaves gradients in the model's weights
    with GradCAM(unchanged, [unchanged.features[-1]]) as cam:
        of_log_probs = cam(images, targets)
    ours = explain.grad_cam(scratch, images, [0, 3, 5, 6]).numpy()
    assert np.abs(ours - of_log_probs).max() > 0.1


def test_fine_tuned_ensemble_averages_its_members_heatmaps():
    torch.manual_seed(0)
    model = transfer.build_finetuned_model(7, members=2, hidden=64).eval()
    images = photos(128, count=2)
    ours = explain.explain_predictions(model, images)
    assert explain.target_layer(model.members[0]) is model.members[0].top[2]  # bn2
    per_member = [reference(nn.Sequential(model.trunk, member), "1.top.2", images, ours.classes)
                  for member in model.members]
    mean = np.mean(per_member, axis=0)
    low, high = mean.min(axis=(1, 2), keepdims=True), mean.max(axis=(1, 2), keepdims=True)
    assert np.abs(ours.heatmaps.numpy() - (mean - low) / (high - low)).max() < 1e-3
    probabilities = model(images).exp()[torch.arange(2), ours.classes]
    assert torch.allclose(ours.probabilities, probabilities.detach(), atol=1e-5)


# ------------------------------------------------------------------ target layers


@pytest.mark.parametrize("name, layer, shape", [
    ("efficientnet_lite0", "bn2", (1280, 2, 2)),
    ("vgg19", "features.36", (512, 2, 2)),  # after the last max-pool
    ("resnet18", "layer4", (512, 2, 2)),
    ("resnet50", "layer4", (2048, 2, 2)),
    ("efficientnet_b0", "features.8", (1280, 2, 2)),
])
def test_target_layer_of_every_backbone(name, layer, shape):
    with torch.device("meta"):  # the structure only: no weights drawn, nothing downloaded
        features, spec = backbones.create_backbone(name, pretrained=False)
        model = transfer.transfer_model_from(features, 5, name, hidden=0, spec=spec)
    assert explain.target_layer(model) is features.get_submodule(layer)
    assert explain.stages(model)[-1] == (f"backbone.{layer}", features.get_submodule(layer))


@pytest.mark.parametrize("name", [
    "efficientnet_lite0", "resnet18", "resnet50", "efficientnet_b0",
    pytest.param("vgg19", marks=pytest.mark.slow),  # drawing 143 M random weights takes 5 s
])
def test_grad_cam_runs_on_every_backbone(name):
    torch.manual_seed(0)
    features, spec = backbones.create_backbone(name, pretrained=False)
    model = transfer.transfer_model_from(features, 5, name, hidden=0, spec=spec).eval()
    heatmaps = explain.grad_cam(model, torch.randn(2, 3, 64, 64))
    assert heatmaps.shape == (2, 64, 64) and heatmaps.dtype == torch.float32
    assert 0 <= float(heatmaps.min()) and float(heatmaps.max()) <= 1
    assert hooks_left(model) == 0


def test_target_layer_of_the_scratch_cnn_and_ensembles(scratch):
    assert explain.target_layer(scratch) is scratch.features[-1]
    torch.manual_seed(0)
    ensemble = transfer.build_finetuned_model(5, members=2, hidden=8)
    with pytest.raises(TypeError, match="one target layer per member"):
        explain.target_layer(ensemble)


# ------------------------------------------------------------------ contract


def test_shapes_range_and_hooks_removed(scratch):
    scratch.train()  # the mode is restored afterwards
    images = photos(128, mean=(0.5,) * 3, std=(0.25,) * 3, count=3)
    heatmaps = explain.grad_cam(scratch, images)
    assert heatmaps.shape == (3, 128, 128) and heatmaps.dtype == torch.float32
    assert float(heatmaps.min()) >= 0 and float(heatmaps.max()) <= 1
    assert torch.allclose(heatmaps.amax(dim=(1, 2)), torch.ones(3))  # each scaled to [0, 1]
    assert explain.grad_cam(scratch, images[0]).shape == (1, 128, 128)  # one photo, (3, H, W)
    assert scratch.training and hooks_left(scratch) == 0
    assert all(p.grad is None for p in scratch.parameters())  # no gradient left behind
    with pytest.raises(ValueError, match="class_index"):
        explain.grad_cam(scratch, images, [1, 2])  # raised after the hooks were registered
    with pytest.raises(ValueError, match="too small"):
        explain.grad_cam(scratch, torch.randn(1, 3, 8, 8))  # raised inside the forward pass
    assert scratch.training and hooks_left(scratch) == 0
    scratch.eval()


def test_class_index_forms(scratch):
    images = photos(128, mean=(0.5,) * 3, std=(0.25,) * 3, count=2)
    one = explain.explain_predictions(scratch, images, 3)
    assert one.classes.tolist() == [3, 3]
    assert torch.equal(explain.grad_cam(scratch, images, torch.tensor([3, 3])), one.heatmaps)
    with pytest.raises(ValueError, match="0..6"):
        explain.grad_cam(scratch, images, 7)


# ------------------------------------------------------------------ sanity check


def test_randomised_weights_change_the_heatmap_far_more_than_mirroring(imagenet_lite0, hopper):
    """Adebayo et al.'s model randomisation test on a trained network (Lite0's ImageNet
    weights) and a real photo, for the class "military uniform": a heatmap that depends on what
    the network learnt changes when the weights are made random, here far more than when the
    photo is mirrored (a change that should not matter: the control, which also catches a
    method too noisy to mean anything)."""
    trained = explain.grad_cam(imagenet_lite0, hopper, 652)
    mirrored = explain.grad_cam(imagenet_lite0, hopper.flip(-1), 652).flip(-1)
    assert float(explain.rank_correlation(trained, mirrored)[0]) > 0.8  # measured 0.94
    check = explain.sanity_check(imagenet_lite0, hopper, layers=1, class_index=652)
    assert torch.equal(check.trained, trained) and check.classes.tolist() == [652]
    for layers in (1, None):  # the classifier only (cascade's first step); every layer
        correlations = torch.cat([explain.rank_correlation(trained, explain.grad_cam(
            explain.randomized_copy(imagenet_lite0, layers, seed), hopper, 652))
            for seed in range(3)]).nan_to_num(0.0)  # NaN: the random network's map is empty
        assert float(correlations.mean()) < 0.5, (layers, correlations)  # measured 0.03, -0.15


def test_randomized_copy(imagenet_lite0):
    before = {k: v.clone() for k, v in imagenet_lite0.state_dict().items()}
    state = torch.get_rng_state()
    copy_ = explain.randomized_copy(imagenet_lite0, layers=1, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(v, imagenet_lite0.state_dict()[k]) for k, v in before.items())
    changed = {k for k, v in copy_.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"classifier.weight", "classifier.bias"}
    again = explain.randomized_copy(imagenet_lite0, layers=1, seed=0)
    assert torch.equal(again.classifier.weight, copy_.classifier.weight)
    with pytest.raises(ValueError, match="layers"):
        explain.randomized_copy(imagenet_lite0, layers=10_000)


def test_rank_correlation_is_spearmans():
    stats = pytest.importorskip("scipy.stats")
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(3, 16, 16, generator=generator).round(decimals=1)  # many ties
    b = (a + torch.rand(3, 16, 16, generator=generator)).relu()
    ours = explain.rank_correlation(a, b)
    for i in range(3):
        assert float(ours[i]) == pytest.approx(stats.spearmanr(a[i].flatten(),
                                                               b[i].flatten()).statistic)
    assert float(explain.rank_correlation(a[0], a[0])) == pytest.approx(1.0)
    assert float(explain.rank_correlation(a[0], -a[0])) == pytest.approx(-1.0)
    assert torch.isnan(explain.rank_correlation(torch.zeros(4, 4), a[0, :4, :4]))


# ------------------------------------------------------------------ filters, maps, overlay


def test_first_layer_filters(scratch):
    filters = explain.first_layer_filters(scratch)
    assert filters.shape == (32, 3, 3, 3) and filters.dtype == torch.float32
    assert float(filters.min()) >= 0 and float(filters.max()) <= 1
    # Each filter's largest weight (by magnitude) lands on 0 or 1; a zero weight on grey.
    assert torch.allclose((filters - 0.5).abs().amax(dim=(1, 2, 3)), torch.full((32,), 0.5))
    zero = models.LandmarkCNN(7)
    with torch.no_grad():
        zero.features[0][0].weight[0] = 0
    assert torch.allclose(explain.first_layer_filters(zero)[0], torch.full((3, 3, 3), 0.5))


def test_feature_maps_after_each_stage(scratch, lite0_transfer):
    image = photos(128, mean=(0.5,) * 3, std=(0.25,) * 3, count=1)[0]
    maps = explain.feature_maps(scratch, image)
    assert [(name, tuple(m.shape)) for name, m in maps] == [
        ("features.0", (32, 64, 64)), ("features.2", (64, 32, 32)),
        ("features.3", (64, 32, 32)), ("features.5", (128, 16, 16)),
        ("features.6", (128, 16, 16)), ("features.8", (256, 8, 8)),
        ("features.9", (256, 8, 8))]
    assert float(maps[0][1].min()) >= 0  # after ReLU
    lite = explain.feature_maps(lite0_transfer, photos(224, count=1)[0])
    assert [n for n, _ in lite] == (["backbone.bn1"] + [f"backbone.blocks.{i}" for i in range(7)]
                                    + ["backbone.bn2"])
    assert tuple(lite[0][1].shape) == (32, 112, 112) and tuple(lite[-1][1].shape) == (1280, 7, 7)
    assert hooks_left(scratch) == 0 and hooks_left(lite0_transfer) == 0


def test_overlay():
    from PIL import Image

    photo = np.full((20, 30, 3), 100, dtype=np.uint8)
    heatmap = torch.zeros(10, 15)
    heatmap[:, 8:] = 1.0
    blended = explain.overlay(photo, heatmap, alpha=0.5)
    assert blended.shape == (20, 30, 3) and blended.dtype == np.uint8
    # jet: 0 is dark blue, 1 dark red (RGB order)
    assert blended[10, 0, 2] > blended[10, 0, 0] and blended[10, 29, 0] > blended[10, 29, 2]
    assert np.array_equal(explain.overlay(Image.fromarray(photo), heatmap, alpha=0.0), photo)


# ------------------------------------------------------------------ the exercise's check



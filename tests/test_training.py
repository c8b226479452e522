"""landmarklib.training: the recipe, one epoch, evaluation, the overfit-one-batch check."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import linear_model, synthetic
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landmarklib.data import make_loaders, tiny_data_root
from landmarklib.models import LandmarkCNN, too_small_cnn
from landmarklib.training import (
    OverfitResult,
    Recipe,
    evaluate,
    make_loss,
    make_optimizer,
    overfit_one_batch,
    seed_everything,
    train_one_epoch,
)

SIZE = 32  # the tiny photos at 32 px keep these tests fast on two CPU cores


# ------------------------------------------------------------------------------------ set-up


def test_seed_everything_repeats_random_numbers():
    seed_everything(3)
    a = torch.rand(3), torch.nn.Linear(4, 2).weight.clone()
    seed_everything(3)
    b = torch.rand(3), torch.nn.Linear(4, 2).weight.clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_make_loss_with_and_without_label_smoothing():
    log_probs = torch.log_softmax(torch.randn(5, 4), dim=1)
    labels = torch.tensor([0, 1, 2, 3, 0])
    assert isinstance(make_loss(0.0), nn.NLLLoss)
    nll = -log_probs[torch.arange(5), labels].mean()
    torch.testing.assert_close(make_loss(0.0)(log_probs, labels), nll)
    # Label smoothing 0.1 over 4 classes: target 0.925 on the right class, 0.025 elsewhere.
    target = torch.full((5, 4), 0.025)
    target[torch.arange(5), labels] = 0.925
    expected = -(target * log_probs).sum(dim=1).mean()
    torch.testing.assert_close(make_loss(0.1)(log_probs, labels), expected)


def test_make_optimizer_skips_frozen_parameters():
    model = linear_model()
    model[1].bias.requires_grad_(False)
    optimizer = make_optimizer(model, lr=0.01, weight_decay=0.1)
    params = optimizer.param_groups[0]["params"]
    assert len(params) == 1 and params[0] is model[1].weight
    assert optimizer.param_groups[0]["lr"] == 0.01
    model[1].weight.requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        make_optimizer(model)


def test_recipe_defaults_are_the_scratch_recipe():
    recipe = Recipe()
    assert (recipe.size, recipe.batch_size, recipe.epochs, recipe.scheduler) == (
        128, 32, 30, "onecycle")
    assert recipe.precision is None and recipe.seed == 0


# ------------------------------------------------------------------------ one pass over data


def test_train_one_epoch_and_evaluate():
    torch.manual_seed(0)
    images, labels = synthetic()
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    model = linear_model()
    optimizer = make_optimizer(model, lr=0.01)
    first_loss, first_acc = evaluate(model, loader, progress=False)
    losses = [train_one_epoch(model, loader, optimizer, progress=False)[0] for _ in range(5)]
    assert model.training
    assert losses[-1] < losses[0]
    before = [p.clone() for p in model.parameters()]
    loss, acc = evaluate(model, loader, progress=False)
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert loss < first_loss and 0.0 <= first_acc <= acc <= 1.0
    manual = nn.functional.nll_loss(model(images), labels).item()
    assert loss == pytest.approx(manual, rel=1e-5)
    assert acc == pytest.approx((model(images).argmax(1) == labels).float().mean().item())


def test_train_one_epoch_steps_a_per_batch_scheduler():
    images, labels = synthetic()
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    model = linear_model()
    optimizer = make_optimizer(model, lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    train_one_epoch(model, loader, optimizer, scheduler=scheduler, progress=False)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**4)  # 4 batches


def test_train_one_epoch_stops_on_nan_loss():
    images, labels = synthetic()
    images[0, 0, 0, 0] = math.nan
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    model = linear_model()
    with pytest.raises(FloatingPointError, match="learning rate"):
        train_one_epoch(model, loader, make_optimizer(model), progress=False)


def test_empty_loader_is_an_error():
    model = linear_model()
    with pytest.raises(ValueError, match="no photo"):
        evaluate(model, [], progress=False)
    with pytest.raises(ValueError, match="no batch of at least 2"):
        train_one_epoch(model, [], make_optimizer(model), progress=False)


def test_a_batch_of_one_photo_is_skipped_in_training():
    # At the smallest input a BatchNorm layer sees one value per channel for one photo, and
    # BatchNorm cannot normalise that: such a batch is left out instead of failing.
    torch.manual_seed(0)
    model = LandmarkCNN(4, widths=(8, 16))
    images, labels = torch.randn(5, 3, model.min_size, model.min_size), torch.arange(5) % 4
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)  # batches of 4 and 1
    loss, accuracy = train_one_epoch(model, loader, make_optimizer(model), progress=False)
    assert math.isfinite(loss) and 0 <= accuracy <= 1


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_one_epoch_in_each_precision_lowers_the_loss(precision):
    torch.manual_seed(0)
    images, labels = synthetic()
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    model = linear_model()
    optimizer = make_optimizer(model, lr=0.05)
    start, _ = evaluate(model, loader, progress=False)
    for _ in range(5):
        train_one_epoch(model, loader, optimizer, precision=precision, progress=False)
    loss, _ = evaluate(model, loader, precision=precision, progress=False)
    assert loss < 0.7 * start  # bfloat16's rounding is far below this margin
    assert all(p.dtype == torch.float32 for p in model.parameters())


# -------------------------------------------------------------------------- overfit one batch


@pytest.fixture(scope="module")
def one_batch():
    """32 real photos of all 7 tiny landmarks, the same on every run (no shuffling, no
    augmentation)."""
    loaders = make_loaders(tiny_data_root(), size=SIZE, augment=False, progress=False)
    photos = loaders.train.dataset
    items = [photos[i] for i in torch.linspace(0, len(photos) - 1, 32).long().tolist()]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def test_overfit_one_batch_passes_for_the_real_model_and_fails_for_the_too_small_one(one_batch):
    images, labels = one_batch
    assert images.shape == (32, 3, SIZE, SIZE) and labels.unique().numel() == 7
    torch.manual_seed(0)
    model = LandmarkCNN(7)
    before = [p.clone() for p in model.parameters()]
    real = overfit_one_batch(model, (images, labels), steps=30, lr=1e-3)
    assert isinstance(real, OverfitResult) and len(real.losses) == 30
    assert real.passed and real.final_loss < 0.05 < real.losses[0]
    assert str(real).startswith("PASSED")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # a copy trained

    small = overfit_one_batch(lambda: too_small_cnn(7), (images, labels), steps=30, lr=1e-3)
    assert not small.passed and small.final_loss > 1.0 and str(small).startswith("FAILED")
    # Not a matter of patience: ten times the steps at ten times the learning rate fail too.
    longer = overfit_one_batch(lambda: too_small_cnn(7), (images, labels), steps=300, lr=1e-2)
    assert not longer.passed and longer.final_loss > 0.5

"""landmarklib.training: one epoch, evaluation, fit (best weights, checkpoints, resume), overfit."""

from __future__ import annotations

import math
import types

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landmarklib import training
from landmarklib.data import make_loaders, tiny_data_root
from landmarklib.models import LandmarkCNN, too_small_cnn
from landmarklib.training import (
    History,
    OverfitResult,
    evaluate,
    fit,
    load_checkpoint,
    make_loss,
    make_optimizer,
    overfit_one_batch,
    pick_device,
    seed_everything,
    train_one_epoch,
)

SIZE = 32  # the tiny photos at 32 px keep these tests fast on two CPU cores


@pytest.fixture(scope="module")
def tiny_loaders():
    """The tiny real dataset (7 classes; 56 training, 14 validation photos) at 32 px."""
    return make_loaders(tiny_data_root(), size=SIZE, batch_size=32, progress=False)


def small_cnn(n_classes: int = 7) -> nn.Module:
    return LandmarkCNN(n_classes, widths=(8, 16, 32))


def synthetic(n: int = 64, n_classes: int = 4, seed: int = 0, shift: int = 0):
    """Random 8x8 images; labels a function of the images (``+ shift`` gives wrong labels)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 8, 8, generator=g)
    labels = (torch.arange(n) + shift) % n_classes
    images[:, 0] += labels.view(-1, 1, 1).float()  # make the true labels learnable
    return images, labels


def linear_model(n_classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, n_classes), nn.LogSoftmax(dim=1))


def _quiet(**kwargs):
    return dict(progress=False, live_plot=False, device="cpu", **kwargs)


# ------------------------------------------------------------------------------------ set-up


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pick_device("cuda")


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


def test_amp_only_on_cuda():
    assert training.amp_settings(torch.device("cpu")) == (None, None)
    assert training.amp_settings(torch.device("cuda"), enabled=False) == (None, None)


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
    with pytest.raises(ValueError, match="no batch"):
        evaluate(model, [], progress=False)


# ----------------------------------------------------------------------------------- History


def test_history_round_trip_and_best_epoch():
    history = History()
    assert history.best_epoch is None
    for i, valid_loss in enumerate([2.0, 1.5, 1.7]):
        history.append(train_loss=3 - i, valid_loss=valid_loss, train_acc=0.1 * i,
                       valid_acc=0.2, lr=1e-3, seconds=1.5)
    assert len(history) == 3 and history.best_epoch == 2
    data = history.to_dict()
    assert data["valid_loss"] == [2.0, 1.5, 1.7] and set(data) == {
        "train_loss", "valid_loss", "train_acc", "valid_acc", "lr", "seconds"}
    assert History.from_dict(data) == history
    assert "epoch   2/3" in history.line(2, total=3) and history.line(2).endswith("*")


# ---------------------------------------------------------------------------------------- fit


def test_fit_on_tiny_data_lowers_the_training_loss(tiny_loaders, capsys):
    torch.manual_seed(0)
    model = small_cnn()
    history = fit(model, tiny_loaders, epochs=3, optimizer=make_optimizer(model, lr=3e-3),
                  **_quiet())
    assert len(history) == 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert all(0 <= a <= 1 for a in history.train_acc + history.valid_acc)
    assert all(s > 0 for s in history.seconds)
    out = capsys.readouterr().out
    assert "epoch   3/3" in out and "Kept the weights of epoch" in out


def test_fit_keeps_the_weights_with_the_lowest_validation_loss(tmp_path):
    # Validation labels disagree with the training labels, so learning the training set makes
    # the validation loss worse every epoch: the best weights are those after epoch 1.
    torch.manual_seed(0)
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True)
    valid = DataLoader(TensorDataset(synthetic()[0], synthetic(shift=1)[1]), batch_size=64)
    model = linear_model()
    history = fit(model, train, valid, epochs=4, optimizer=make_optimizer(model, lr=0.05),
                  checkpoint_path=tmp_path / "run.pt", **_quiet())
    assert history.best_epoch == 1
    assert history.valid_loss[-1] > history.valid_loss[0]
    loss, _ = evaluate(model, valid, progress=False)
    assert loss == pytest.approx(history.valid_loss[0], rel=1e-5)  # epoch 1's weights are back
    checkpoint = load_checkpoint(tmp_path / "run.pt")
    assert checkpoint["best_epoch"] == 1 and checkpoint["epoch"] == 4
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, checkpoint["best_model"][name])
        assert not torch.equal(tensor, checkpoint["model"][name])  # the last weights differ


def test_early_stopping(tmp_path):
    torch.manual_seed(0)
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True)
    valid = DataLoader(TensorDataset(synthetic()[0], synthetic(shift=1)[1]), batch_size=64)
    model = linear_model()
    history = fit(model, train, valid, epochs=10, optimizer=make_optimizer(model, lr=0.05),
                  early_stopping_patience=2, **_quiet())
    assert len(history) == 3 and history.best_epoch == 1


@pytest.mark.parametrize("scheduler", ["onecycle", "plateau"])
def test_fit_with_a_scheduler(scheduler):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True)
    model = linear_model()
    history = fit(model, train, train, epochs=3, optimizer=make_optimizer(model, lr=0.01),
                  scheduler=scheduler, **_quiet())
    if scheduler == "onecycle":
        assert history.lr[0] == pytest.approx(0.01 / 25)  # starts low, peaks at 30%
        assert max(history.lr) > history.lr[0]
    else:
        assert history.lr == [0.01] * 3
    with pytest.raises(ValueError, match="scheduler"):
        fit(model, train, train, epochs=1, scheduler="cosine", **_quiet())


def test_fit_needs_validation_data():
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16)
    with pytest.raises(ValueError, match="validation"):
        fit(linear_model(), train, epochs=1, **_quiet())


def test_fit_is_seeded(tiny_loaders):
    runs = []
    for _ in range(2):
        model = small_cnn()  # different initial weights each time...
        torch.manual_seed(1)
        model = small_cnn()  # ...unless seeded
        runs.append(fit(model, tiny_loaders, epochs=1, seed=5, **_quiet()).to_dict())
    runs[0].pop("seconds"), runs[1].pop("seconds")
    assert runs[0] == runs[1]


class InterruptedLoader:
    """Wraps a DataLoader and raises KeyboardInterrupt after ``after`` batches of epoch
    ``epoch``, like a person pressing Ctrl-C (or a machine dying) in the middle of an epoch."""

    def __init__(self, loader, epoch: int, after: int):
        self.loader, self.epoch, self.after, self.started = loader, epoch, after, 0
        self.generator = loader.generator  # fit saves and restores the shuffling order

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.started += 1
        for i, batch in enumerate(self.loader):
            if self.started == self.epoch and i == self.after:
                raise KeyboardInterrupt
            yield batch


def test_a_run_killed_mid_epoch_resumes_where_it_stopped(tmp_path, capsys):
    loaders = make_loaders(tiny_data_root(), size=SIZE, batch_size=16, progress=False)
    assert len(loaders.train) >= 3
    recipe = dict(epochs=3, scheduler="onecycle", label_smoothing=0.1, seed=0, **_quiet())

    def new_model():
        model = small_cnn()
        return model, make_optimizer(model, lr=3e-3, weight_decay=0.05)

    torch.manual_seed(0)
    reference, optimizer = new_model()
    expected = fit(reference, loaders, optimizer=optimizer, **recipe)

    path = tmp_path / "checkpoints" / "run.pt"
    torch.manual_seed(0)
    model, optimizer = new_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, InterruptedLoader(loaders.train, epoch=2, after=2), loaders.valid,
            optimizer=optimizer, checkpoint_path=path, **recipe)
    assert load_checkpoint(path)["epoch"] == 1  # epoch 2 was lost, epoch 1 was not
    assert [p.name for p in path.parent.iterdir()] == ["run.pt"]  # no temporary file left

    torch.manual_seed(123)  # a new process: other weights, other random state
    model, optimizer = new_model()
    capsys.readouterr()
    resumed = fit(model, loaders, optimizer=optimizer, checkpoint_path=path, **recipe)
    assert "Resuming from" in capsys.readouterr().out
    assert len(resumed) == 3
    assert resumed.valid_loss[0] == expected.valid_loss[0]  # epoch 1 from the checkpoint
    # On a CPU, the resumed run is the run that was never interrupted.
    assert resumed.train_loss == pytest.approx(expected.train_loss, rel=1e-5)
    assert resumed.valid_loss == pytest.approx(expected.valid_loss, rel=1e-5)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)

    # Calling fit again on a finished run trains nothing and returns the same history.
    again = fit(model, loaders, optimizer=optimizer, checkpoint_path=path, **recipe)
    assert again.to_dict() == resumed.to_dict()
    # A one-cycle schedule cannot be stretched to more epochs...
    with pytest.raises(ValueError, match="resume=False"):
        fit(model, loaders, optimizer=optimizer, checkpoint_path=path, **{**recipe, "epochs": 4})


def test_checkpoint_loads_safely_and_holds_everything(tmp_path):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    model = linear_model()
    fit(model, train, train, epochs=2, scheduler="plateau", checkpoint_path=tmp_path / "c.pt",
        **_quiet())
    checkpoint = torch.load(tmp_path / "c.pt", weights_only=True)
    assert {"epoch", "epochs", "model", "optimizer", "scheduler", "history", "best_model",
            "best_epoch", "rng"} <= set(checkpoint)
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]["valid_loss"]) == 2
    assert checkpoint["scheduler"]["mode"] == "min"
    assert isinstance(checkpoint["rng"]["loader"], torch.Tensor)


def test_fit_with_resume_false_starts_again(tmp_path):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16)
    path = tmp_path / "c.pt"
    fit(linear_model(), train, train, epochs=2, checkpoint_path=path, **_quiet())
    history = fit(linear_model(), train, train, epochs=1, checkpoint_path=path, resume=False,
                  **_quiet())
    assert len(history) == 1 and load_checkpoint(path)["epoch"] == 1


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16)
    path = tmp_path / "c.pt"
    fit(linear_model(), train, train, epochs=1, checkpoint_path=path, **_quiet())
    old_bytes = path.read_bytes()

    def save_half_then_fail(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        fit(linear_model(), train, train, epochs=2, checkpoint_path=path, **_quiet())
    assert path.read_bytes() == old_bytes  # the old checkpoint is intact...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # ...and no temporary file
    monkeypatch.undo()
    history = fit(linear_model(), train, train, epochs=2, checkpoint_path=path, **_quiet())
    assert len(history) == 2


def test_live_plot_outside_a_notebook_does_not_fail(capsys):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=32)
    fit(linear_model(), train, train, epochs=2, progress=False, live_plot=True, device="cpu")
    assert "epoch   2/2" in capsys.readouterr().out
    assert not training._in_notebook()


def test_fit_accepts_a_loaders_object():
    train = DataLoader(TensorDataset(*synthetic()), batch_size=32)
    loaders = types.SimpleNamespace(train=train, valid=train)
    assert len(fit(linear_model(), loaders, epochs=1, **_quiet())) == 1


# -------------------------------------------------------------------------- overfit one batch


def test_overfit_one_batch_passes_for_the_real_model_and_fails_for_the_too_small_one(
        tiny_loaders):
    images, labels = next(iter(tiny_loaders.train))  # 32 real photos of 7 landmarks
    assert images.shape == (32, 3, SIZE, SIZE) and labels.unique().numel() == 7
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

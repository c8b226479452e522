"""landmarklib.fitting: the epoch loop (epoch 0, best weights, early stopping, checkpoints,
resume) and its History."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from helpers import QUIET, linear_model, small_cnn, synthetic
from torch.utils.data import DataLoader, TensorDataset

from landmarklib import plots
from landmarklib.checkpoints import load_checkpoint
from landmarklib.data import make_loaders, tiny_data_root
from landmarklib.fitting import History, fit
from landmarklib.training import Recipe, evaluate, make_optimizer

SIZE = 32  # the tiny photos at 32 px keep these tests fast on two CPU cores


def plain(**changes) -> Recipe:
    """A recipe with nothing but AdamW at a constant learning rate, float32, seed 0."""
    settings = dict(epochs=3, lr=0.05, weight_decay=0.0, scheduler=None, label_smoothing=0.0,
                    precision="float32", channels_last=False, seed=0)
    return Recipe(**{**settings, **changes})


@pytest.fixture(scope="module")
def tiny_loaders():
    """The tiny real dataset (7 classes; 56 training, 14 validation photos) at 32 px."""
    return make_loaders(tiny_data_root(), size=SIZE, batch_size=32, progress=False)


def test_history_round_trip_best_epoch_and_epoch_zero():
    history = History()
    assert history.best_epoch is None and history.epochs_trained == 0
    history.append(epoch=0, train_loss=math.nan, train_acc=math.nan, valid_loss=1.8,
                   valid_acc=0.1, lr=1e-3, seconds=0.5)
    for epoch, valid_loss in enumerate([2.0, 1.5, 1.7], start=1):
        history.append(epoch=epoch, train_loss=3 - epoch, valid_loss=valid_loss,
                       train_acc=0.1 * epoch, valid_acc=0.2, lr=1e-3, seconds=1.5)
    assert len(history) == 4 and history.epochs_trained == 3 and history.best_epoch == 2
    data = history.to_dict()
    assert data["epoch"] == [0, 1, 2, 3] and data["valid_loss"] == [1.8, 2.0, 1.5, 1.7]
    again = History.from_dict(data)
    assert again.epoch == history.epoch and again.valid_loss == history.valid_loss
    assert "starting weights" in history.line(0) and "epoch   2/3" in history.line(2, total=3)
    assert history.line(2).endswith("*") and not history.line(3).endswith("*")
    old = {k: v[1:] for k, v in data.items() if k != "epoch"}  # written before epoch numbers
    assert History.from_dict(old).epoch == [1, 2, 3]


def test_fit_on_tiny_data_lowers_the_training_loss(tiny_loaders, capsys):
    torch.manual_seed(0)
    model = small_cnn()
    history = fit(model, tiny_loaders, recipe=plain(lr=3e-3, epochs=3), **QUIET)
    assert history.epoch == [0, 1, 2, 3] and history.epochs_trained == 3
    assert math.isnan(history.train_loss[0]) and history.train_loss[3] < history.train_loss[1]
    assert all(0 <= a <= 1 for a in history.train_acc[1:] + history.valid_acc)
    assert all(s > 0 for s in history.seconds)
    out = capsys.readouterr().out
    assert "epoch   0/3" in out and "epoch   3/3" in out and "Kept the weights of epoch" in out


def test_fit_never_returns_weights_worse_than_it_was_given(tmp_path):
    # Validation labels disagree with the training labels: learning the training set makes the
    # validation loss worse, so the best weights are the starting ones (epoch 0).
    torch.manual_seed(0)
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True)
    valid = DataLoader(TensorDataset(synthetic()[0], synthetic(shift=1)[1]), batch_size=64)
    model = linear_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    start_loss, _ = evaluate(model, valid, progress=False)
    history = fit(model, train, valid, plain(epochs=4), checkpoint=tmp_path / "run.pt", **QUIET)
    assert history.valid_loss[0] == pytest.approx(start_loss)
    assert history.best_epoch == 0 and min(history.valid_loss[1:]) > history.valid_loss[0]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, start[name])  # the starting weights are back
    checkpoint = load_checkpoint(tmp_path / "run.pt")
    assert checkpoint["best_epoch"] == 0 and checkpoint["epoch"] == 4
    assert checkpoint["precision"] == "float32"
    assert not torch.equal(checkpoint["model"]["1.weight"], start["1.weight"])


def test_fit_keeps_the_best_trained_epoch():
    torch.manual_seed(0)
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True)
    model = linear_model()
    history = fit(model, train, train, plain(epochs=3), **QUIET)
    assert history.best_epoch >= 1 and history.valid_loss[-1] < 0.5 * history.valid_loss[0]
    loss, _ = evaluate(model, train, progress=False)
    assert loss == pytest.approx(min(history.valid_loss), rel=1e-5)


def test_early_stopping():
    torch.manual_seed(0)
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True)
    valid = DataLoader(TensorDataset(synthetic()[0], synthetic(shift=1)[1]), batch_size=64)
    history = fit(linear_model(), train, valid, plain(epochs=10, early_stopping_patience=2),
                  **QUIET)
    assert history.epochs_trained == 2 and history.best_epoch == 0


@pytest.mark.parametrize("scheduler", ["onecycle", "plateau"])
def test_fit_with_a_scheduler(scheduler):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16, shuffle=True)
    model = linear_model()
    history = fit(model, train, train, plain(lr=0.01, scheduler=scheduler), **QUIET)
    if scheduler == "onecycle":
        assert history.lr[1] == pytest.approx(0.01 / 25)  # starts low, peaks at 30%
        assert max(history.lr) > history.lr[1]
    else:
        assert history.lr == [0.01] * 4
    with pytest.raises(ValueError, match="scheduler"):
        fit(model, train, train, plain(epochs=1, scheduler="cosine"), **QUIET)


def test_fit_needs_validation_data():
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16)
    with pytest.raises(ValueError, match="validation"):
        fit(linear_model(), train, recipe=plain(epochs=1), **QUIET)


def test_fit_is_seeded(tiny_loaders):
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = small_cnn()
        runs.append(fit(model, tiny_loaders, recipe=plain(epochs=1, seed=5), **QUIET).to_dict())
    runs[0].pop("seconds"), runs[1].pop("seconds")
    np.testing.assert_equal(runs[0], runs[1])


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
    recipe = Recipe(epochs=3, lr=3e-3, weight_decay=0.05, scheduler="onecycle",
                    label_smoothing=0.1, seed=0)

    def new_model():
        return small_cnn()

    torch.manual_seed(0)
    reference = new_model()
    expected = fit(reference, loaders, recipe=recipe, **QUIET)

    path = tmp_path / "checkpoints" / "run.pt"
    torch.manual_seed(0)
    model = new_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, InterruptedLoader(loaders.train, epoch=2, after=2), loaders.valid, recipe,
            checkpoint=path, **QUIET)
    assert load_checkpoint(path)["epoch"] == 1  # epoch 2 was lost, epoch 1 was not
    assert [p.name for p in path.parent.iterdir()] == ["run.pt"]  # no temporary file left

    torch.manual_seed(123)  # a new process: other weights, other random state
    model = new_model()
    capsys.readouterr()
    resumed = fit(model, loaders, recipe=recipe, checkpoint=path, **QUIET)
    assert "Resuming from" in capsys.readouterr().out
    assert resumed.epoch == [0, 1, 2, 3]
    assert resumed.valid_loss[:2] == expected.valid_loss[:2]  # from the checkpoint
    # On the same CPU, the resumed run is the run that was never interrupted.
    assert resumed.train_loss[1:] == pytest.approx(expected.train_loss[1:], rel=1e-5)
    assert resumed.valid_loss == pytest.approx(expected.valid_loss, rel=1e-5)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)

    # Calling fit again on a finished run trains nothing and returns the same history.
    again = fit(model, loaders, recipe=recipe, checkpoint=path, **QUIET)
    np.testing.assert_equal(again.to_dict(), resumed.to_dict())  # NaN at epoch 0 included
    # A one-cycle schedule cannot be stretched to more epochs...
    with pytest.raises(ValueError, match="resume=False"):
        fit(model, loaders, recipe=Recipe(**{**vars(recipe), "epochs": 4}), checkpoint=path,
            **QUIET)


def test_fit_with_resume_false_starts_again(tmp_path):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16)
    path = tmp_path / "c.pt"
    fit(linear_model(), train, train, plain(epochs=2), checkpoint=path, **QUIET)
    history = fit(linear_model(), train, train, plain(epochs=1), checkpoint=path, resume=False,
                  **QUIET)
    assert history.epochs_trained == 1 and load_checkpoint(path)["epoch"] == 1


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=16)
    path = tmp_path / "c.pt"
    fit(linear_model(), train, train, plain(epochs=1), checkpoint=path, **QUIET)
    old_bytes = path.read_bytes()

    def save_half_then_fail(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        fit(linear_model(), train, train, plain(epochs=2), checkpoint=path, **QUIET)
    assert path.read_bytes() == old_bytes  # the old checkpoint is intact...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # ...and no temporary file
    monkeypatch.undo()
    history = fit(linear_model(), train, train, plain(epochs=2), checkpoint=path, **QUIET)
    assert history.epochs_trained == 2


def test_live_plot_outside_a_notebook_does_not_fail(capsys):
    train = DataLoader(TensorDataset(*synthetic()), batch_size=32)
    fit(linear_model(), train, train, plain(epochs=2), progress=False, live_plot=True,
        device="cpu")
    assert "epoch   2/2" in capsys.readouterr().out
    assert not plots.in_notebook()


def test_fit_accepts_a_loaders_object():
    train = DataLoader(TensorDataset(*synthetic()), batch_size=32)
    loaders = types.SimpleNamespace(train=train, valid=train)
    assert fit(linear_model(), loaders, recipe=plain(epochs=1), **QUIET).epochs_trained == 1


def test_fit_uses_the_recipes_optimizer_settings():
    train = DataLoader(TensorDataset(*synthetic()), batch_size=32)
    model = linear_model()
    history = fit(model, train, train, plain(epochs=1, lr=0.02), **QUIET)
    assert history.lr == [0.02, 0.02]
    optimizer = make_optimizer(model, lr=0.005)
    history = fit(model, train, train, plain(epochs=1, lr=0.02), optimizer=optimizer, **QUIET)
    assert history.lr == [0.005, 0.005]  # a given optimiser wins

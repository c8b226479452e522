"""landmarklib.plots: every figure draws what it is given (and never computes results)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from landmarklib import data, plots
from landmarklib.fitting import History
from landmarklib.training import OverfitResult

matplotlib.use("agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


def _history(valid_losses) -> History:
    history = History()
    for epoch, loss in enumerate(valid_losses):
        history.append(epoch=epoch, train_loss=math.nan if epoch == 0 else loss + 0.1,
                       train_acc=math.nan if epoch == 0 else 0.5, valid_loss=loss,
                       valid_acc=1 - loss / 3, lr=1e-3, seconds=1.0)
    return history


def test_loss_curves_start_at_epoch_zero_and_mark_the_best_epoch():
    fig = plots.loss_curves({"a": _history([2.0, 1.5, 1.2, 1.4]), "b": _history([2.1, 1.9])})
    ax_loss, ax_acc = fig.axes
    lines = [line for line in ax_loss.get_lines() if line.get_label() == "a: validation"]
    assert list(lines[0].get_xdata()) == [0, 1, 2, 3]
    best = [line for line in ax_loss.get_lines() if line.get_marker() == "o"]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in best] == [(2, 1.2), (1, 1.9)]
    # An old history without epoch numbers: epochs 1, 2, ...
    old = {k: v[1:] for k, v in _history([2.0, 1.5, 1.2]).to_dict().items() if k != "epoch"}
    fig = plots.loss_curves({"old": old})
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [1, 2]


def test_live_plot_replaces_its_picture(monkeypatch):
    shown = []

    class Handle:
        def update(self, image):
            shown.append(("update", image))

    def display(image, display_id=False):
        shown.append(("display", image))
        return Handle()

    monkeypatch.setattr("IPython.display.display", display)
    plot = plots.LivePlot(epochs=5)
    plot.update(_history([2.0]))
    plot.update(_history([2.0, 1.5]))
    assert [kind for kind, _ in shown] == ["display", "update"]
    assert shown[1][1].data.startswith(b"\x89PNG")


def test_overfit_curves_one_line_per_network():
    results = {"good": OverfitResult([2.0, 0.5, 0.01], 0.05, True),
               "bad": OverfitResult([2.0, 1.9, 1.8], 0.05, False)}
    ax = plots.overfit_curves(results).axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["good (passed, final loss 0.010)", "bad (failed, final loss 1.800)"]


def test_confusion_matrix_shows_shares_of_each_class():
    confusion = np.array([[8, 2], [0, 5]])
    fig = plots.confusion_matrix(confusion, ["A", "B"])
    shown = fig.axes[0].get_images()[0].get_array()
    assert np.allclose(shown, [[0.8, 0.2], [0.0, 1.0]])


def test_photo_grids_title_every_photo():
    paths = sorted(data.tiny_data_root().glob("test/*/*.jpg"))[:5]
    fig = plots.sample_grid([(p, 0) for p in paths], ["Haleakala"], columns=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == 6 and titles == ["Haleakala"] * 5
    fig = plots.picture_grid([Image.new("RGB", (30, 20))] * 2, ["one", "two"], columns=2)
    assert [ax.get_title() for ax in fig.axes] == ["one", "two"]


def test_data_exploration_figures():
    sizes = np.array([[800, 600], [600, 800], [96, 96]])
    assert len(plots.image_sizes(sizes).axes) == 2
    counts = {"train": {"A": 3, "B": 2}, "test": {"A": 1, "B": 1}}
    bars = plots.class_counts(counts).axes[0].patches
    assert [round(b.get_width()) for b in bars] == [3, 2, 1, 1]
    before = torch.rand(2, 3, 8, 8)
    assert len(plots.channel_histograms(before, (before - 0.5) / 0.25).axes) == 2
    fig = plots.image_batch(torch.zeros(3, 3, 8, 8), [0, 1, 1], ["A", "B"], (0.5,) * 3,
                            (0.5,) * 3, columns=2)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["A", "B", "B"]
    fig = plots.photo(Image.new("RGB", (8, 8)), "Is this?")
    assert fig._suptitle.get_text() == "Is this?" and len(fig.axes) == 1
    assert len(plots.photo(Image.new("RGB", (8, 8)), "?", Image.new("RGB", (8, 8))).axes) == 2

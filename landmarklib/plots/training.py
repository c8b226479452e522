"""Figures of training (notebook 02): loss curves, the live plot, the overfit check."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def loss_curves(histories: Mapping[str, object], title: str = "Loss per epoch") -> Figure:
    """Training (dashed) and validation (solid) loss and accuracy per epoch, for one or several
    runs; a dot marks each run's best epoch.

    Args:
        histories: ``{label: history}`` with each history a
            :class:`landmarklib.fitting.History` (or its ``to_dict()``), e.g.
            ``{"custom init": h1, "default init": h2}``. Epoch 0, the starting weights, has a
            validation point only.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Weight initialisation'.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, history) in enumerate(histories.items()):
        _draw_history(ax_loss, ax_acc, history, f"C{i}", label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title=title)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy (dashed: training)")
    ax_acc.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _draw_history(ax_loss, ax_acc, history, colour: str, label: str) -> None:
    h = history if isinstance(history, Mapping) else history.to_dict()
    epochs = np.asarray(h.get("epoch") or range(1, len(h["valid_loss"]) + 1))
    ax_loss.plot(epochs, h["train_loss"], "--", color=colour, label=f"{label}: training")
    ax_loss.plot(epochs, h["valid_loss"], "-", color=colour, label=f"{label}: validation")
    best = int(np.argmin(h["valid_loss"]))
    ax_loss.plot(epochs[best], h["valid_loss"][best], "o", color=colour)
    ax_acc.plot(epochs, h["train_acc"], "--", color=colour)
    ax_acc.plot(epochs, h["valid_acc"], "-", color=colour, label=label)
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, VS Code, Colab), False in a terminal or script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LivePlot:
    """A loss and accuracy plot that redraws itself in place in a notebook, once per epoch
    (used by :func:`landmarklib.fitting.fit`).

    The figure is drawn off-screen and shown as a PNG through ``IPython.display`` with a
    ``display_id``, so each update replaces the picture instead of adding one more.

    Args:
        epochs: the epochs planned (the x axis ends there).
    """

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.handle = None

    def update(self, history) -> None:
        """Redraw with every epoch of ``history`` (a :class:`landmarklib.fitting.History`)."""
        from IPython.display import Image as PNG
        from IPython.display import display

        fig = Figure(figsize=(10, 3.6), layout="constrained")
        ax_loss, ax_acc = fig.subplots(1, 2)
        _draw_history(ax_loss, ax_acc, history, "C0", "")
        for ax, ylabel in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.axvline(history.best_epoch, color="grey", ls=":", lw=1)
            ax.set(xlabel="epoch", ylabel=ylabel, xlim=(-0.5, self.epochs + 0.5))
        ax_acc.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
        fig.suptitle(history.line(total=self.epochs), fontsize=9, family="monospace")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        image = PNG(data=buffer.getvalue(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def overfit_curves(results: Mapping[str, object]) -> Figure:
    """Loss per step of :func:`landmarklib.training.overfit_one_batch`, one line per network,
    with each run's threshold.

    Args:
        results: ``{label: OverfitResult}``.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Overfit one batch'.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, result) in enumerate(results.items()):
        verdict = "passed" if result.passed else "failed"
        ax.plot(np.arange(1, len(result.losses) + 1), result.losses, color=f"C{i}",
                label=f"{label} ({verdict}, final loss {result.losses[-1]:.3f})")
        ax.axhline(result.threshold, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="step", ylabel="loss on the batch", yscale="log", title="Overfit one batch")
    ax.legend()
    fig.tight_layout()
    return fig

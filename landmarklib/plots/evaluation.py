"""Figures of a test result: the confusion matrix (the most confident mistakes are shown with
their heatmaps, :func:`landmarklib.plots.explain.heatmap_grid`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure


def confusion_matrix(confusion: np.ndarray, class_names: Sequence[str],
                     title: str = "Confusion matrix (rows: truth, columns: prediction)") -> Figure:
    """The confusion matrix as an image, each row divided by its class's number of photos.

    Args:
        confusion: int64 ``(C, C)``, e.g. ``EvaluationResult.confusion``.
        class_names: ``C`` names.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Testing the model'.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = min(14, 3 + 0.22 * n)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    shown = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), class_names, fontsize=7)
    ax.set_title(title)
    fig.colorbar(shown, ax=ax, fraction=0.046, label="share of the class's photos")
    fig.tight_layout()
    return fig

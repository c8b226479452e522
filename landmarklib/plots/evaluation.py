"""Figures of a test result: the confusion matrix and the most confident mistakes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from landmarklib.plots.exploration import sample_grid


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


def mistakes_gallery(paths: Sequence[str | os.PathLike], log_probs: torch.Tensor,
                     labels: torch.Tensor, indices: Sequence[int], class_names: Sequence[str],
                     columns: int = 4) -> Figure:
    """Photos the model got wrong, each titled "predicted (probability) / truth".

    Args:
        paths: the file of every evaluated photo, in evaluation order.
        log_probs: float ``(N, C)``; labels: int64 ``(N,)``.
        indices: which photos to show, e.g. from
            :func:`landmarklib.evaluation.most_confident_mistakes`.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Testing the model'.
    """
    titles, samples = [], []
    for i in [int(i) for i in indices]:
        probability, predicted = log_probs[i].exp().max(dim=0)
        titles.append(f"{class_names[int(predicted)]} ({float(probability):.0%})\n"
                      f"truth: {class_names[int(labels[i])]}")
        samples.append((paths[i], int(labels[i])))
    return sample_grid(samples, class_names, columns=columns, titles=titles)

"""Figures of notebook 05, beyond the fixed classes: embeddings as a map, nearest photos,
reliability diagrams, and known against unknown photos.

The numbers come from :mod:`landmarklib.embeddings` (:func:`~landmarklib.embeddings.project_2d`,
:func:`~landmarklib.embeddings.nearest`) and :mod:`landmarklib.calibration`
(:func:`~landmarklib.calibration.reliability`, :func:`~landmarklib.calibration.roc_curve`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from landmarklib.plots.exploration import sample_grid


def embedding_map(points: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
                  title: str = "Test photos' embeddings, projected to 2-D") -> Figure:
    """Photos as points, coloured by class: photos the network finds similar lie close.

    Args:
        points: float ``(N, 2)``, e.g. :func:`landmarklib.embeddings.project_2d`.
        labels: ``N`` class ids; class_names: display names in class-id order (the legend
            lists them when there are at most 20).

    Taught in notebooks/05_beyond_the_landmarks.ipynb, 'Embeddings as a map'.
    """
    points, labels = np.asarray(points), np.asarray(labels)
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(8, 7))
    for label in np.unique(labels):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=12, alpha=0.75,
                   color=colours(int(label) % 20), marker="os^D"[int(label) // 20 % 4],
                   label=class_names[int(label)])
    if len(np.unique(labels)) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_xlabel("first direction")
    ax.set_ylabel("second direction")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def neighbours(query: str | os.PathLike, paths: Sequence[str | os.PathLike],
               names: Sequence[str], similarities: Sequence[float]) -> Figure:
    """A photo and its most similar remembered photos, each titled with its class and cosine
    similarity (:func:`landmarklib.embeddings.nearest`).

    Taught in notebooks/05_beyond_the_landmarks.ipynb, 'Nearest photos'.
    """
    samples = [(query, 0), *((path, 0) for path in paths)]
    titles = ["the photo", *(f"{name}\nsimilarity {s:.2f}"
                             for name, s in zip(names, similarities))]
    return sample_grid(samples, ["?"], columns=len(samples), titles=titles)


def reliability_diagram(bins: Mapping[str, dict], title: str = "Reliability") -> Figure:
    """One reliability diagram per entry: per bin of top-1 probability, the share of right
    answers; a calibrated model's bars follow the diagonal.

    Args:
        bins: ``{"before (ECE 4.1%)": reliability(...), "after ...": ...}``, each from
            :func:`landmarklib.calibration.reliability`.

    Taught in notebooks/05_beyond_the_landmarks.ipynb, 'How sure is the model?'.
    """
    fig, axes = plt.subplots(1, len(bins), figsize=(4.5 * len(bins), 4.3), squeeze=False)
    for ax, (name, numbers) in zip(axes.flat, bins.items()):
        edges = numbers["edges"]
        width = np.diff(edges)
        accuracy = np.nan_to_num(numbers["accuracy"])
        ax.bar(edges[:-1], accuracy, width=width, align="edge", edgecolor="black",
               label="share right")
        gap = np.nan_to_num(numbers["confidence"]) - accuracy
        ax.bar(edges[:-1], gap, bottom=accuracy, width=width, align="edge", color="tab:red",
               alpha=0.3, label="gap to the mean probability")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-1 probability", title=name)
        ax.legend(fontsize=8, loc="upper left")
    axes[0, 0].set_ylabel("share of right answers")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def score_histograms(known: np.ndarray, unknown: Mapping[str, np.ndarray],
                     threshold: float | None = None, score: str = "score") -> Figure:
    """Histograms of a known-landmark score for photos of known landmarks and for each set
    of unknown photos, with the threshold (photos left of it get "I don't know").

    Args:
        known: float ``(N,)``; unknown: ``{"near: landmarks never seen": (M,), ...}``.
        threshold: drawn as a vertical line; score: the axis label.

    Taught in notebooks/05_beyond_the_landmarks.ipynb, 'Known or unknown'.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    every = np.concatenate([np.asarray(known), *map(np.asarray, unknown.values())])
    edges = np.linspace(every.min(), every.max(), 40)
    ax.hist(known, bins=edges, alpha=0.55, density=True, label="known landmarks")
    for name, scores in unknown.items():
        ax.hist(scores, bins=edges, alpha=0.45, density=True, label=name)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label="threshold")
    ax.set(xlabel=score, ylabel="density", title="Known against unknown photos")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
               title: str = "Telling known from unknown photos") -> Figure:
    """ROC curves: share of known photos accepted against share of unknown photos accepted,
    one line per score, with the 95% line where FPR@95TPR is read.

    Args:
        curves: ``{"knn (AUROC 0.97)": (fpr, tpr), ...}`` from
            :func:`landmarklib.calibration.roc_curve`.

    Taught in notebooks/05_beyond_the_landmarks.ipynb, 'Known or unknown'.
    """
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", linewidth=1, label="chance")
    ax.axhline(0.95, color="grey", linewidth=0.8, linestyle="--")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="unknown photos accepted (FPR)",
           ylabel="known photos accepted (TPR)", title=title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig

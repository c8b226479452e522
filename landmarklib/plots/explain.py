"""Figures of what the network looks at (:mod:`landmarklib.explain`): filters, feature maps,
Grad-CAM heatmaps, and the randomisation sanity check."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure


def _pictures(images: torch.Tensor, mean, std) -> np.ndarray:
    """Normalised float ``(N, 3, H, W)`` photos back to uint8 pictures ``(N, H, W, 3)``."""
    from landmarklib.data import denormalize

    pixels = denormalize(images.detach().cpu().float(), mean, std)
    return (pixels.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def filter_grid(filters: Mapping[str, torch.Tensor], columns: int = 16) -> Figure:
    """First-layer filters as small colour pictures, one block of rows per entry.

    Args:
        filters: ``{title: filters}``, each float ``(K, kh, kw, 3)`` in [0, 1] from
            :func:`landmarklib.explain.first_layer_filters`, e.g.
            ``{"before training": f0, "after training": f1}``. Grey is a zero weight.
        columns: filters per row.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'The first layer's filters'.
    """
    blocks = list(filters.items())
    rows_per = [math.ceil(len(f) / columns) for _, f in blocks]
    fig = plt.figure(figsize=(0.55 * columns, 0.6 * sum(rows_per) + 0.4 * len(blocks)),
                     layout="constrained")
    subfigures = fig.subfigures(len(blocks), 1, squeeze=False, height_ratios=rows_per).flat
    for sub, (title, block), rows in zip(subfigures, blocks, rows_per):
        axes = sub.subplots(rows, columns, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, picture in zip(axes.flat, block):
            ax.imshow(np.asarray(picture))
        sub.suptitle(f"{title}: {len(block)} filters of {block.shape[1]} x {block.shape[2]}",
                     x=0.01, ha="left", fontsize=9)
    return fig


def feature_map_grid(maps: Sequence[tuple[str, torch.Tensor]], channels: int = 8) -> Figure:
    """Feature maps of one photo, one row per stage: the ``channels`` most active maps (highest
    mean value), each with its own colour scale (yellow: strong response).

    Args:
        maps: ``[(name, (C, h, w) float), ...]`` from :func:`landmarklib.explain.feature_maps`.
        channels: maps per row.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Feature maps'.
    """
    fig, axes = plt.subplots(len(maps), channels, squeeze=False,
                             figsize=(1.35 * channels, 1.45 * len(maps)))
    for row, (name, stage) in zip(axes, maps):
        strongest = stage.float().mean(dim=(1, 2)).argsort(descending=True)[:channels]
        for ax, channel in zip(row, strongest.tolist()):
            ax.imshow(stage[channel].numpy(), cmap="viridis")
            ax.set_title(f"channel {channel}", fontsize=7)
        for ax in row:
            ax.set(xticks=[], yticks=[])
        c, h, w = stage.shape
        row[0].set_ylabel(f"{name}\n{c} x {h} x {w}", fontsize=7)
    fig.tight_layout()
    return fig


def heatmap_grid(images: torch.Tensor, explanation, class_names: Sequence[str], mean, std,
                 labels: Sequence[int] | None = None, columns: int = 3) -> Figure:
    """Photos and their Grad-CAM heatmaps, side by side: each photo as the network saw it,
    then the heatmap over it, titled "class (probability)" (and the truth, when given).

    Args:
        images: the normalised photos, float ``(N, 3, H, W)``.
        explanation: :class:`landmarklib.explain.Explanation` of those photos.
        class_names: display names in class-id order; mean, std: the normalisation of images.
        labels: the true classes, int ``(N,)``, to add "truth: ..." to each title.
        columns: photos per row (each takes two panels).

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Where does the evidence lie? Grad-CAM'.
    """
    from landmarklib.explain import overlay

    pictures = _pictures(images, mean, std)
    rows = max(1, math.ceil(len(pictures) / columns))
    fig, axes = plt.subplots(rows, 2 * columns, squeeze=False,
                             figsize=(2.2 * 2 * columns, 2.5 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for i, picture in enumerate(pictures):
        row, column = divmod(i, columns)
        left, right = axes[row, 2 * column], axes[row, 2 * column + 1]
        left.imshow(picture)
        right.imshow(overlay(picture, explanation.heatmaps[i]))
        title = (f"{class_names[int(explanation.classes[i])]} "
                 f"({float(explanation.probabilities[i]):.0%})")
        if labels is not None:
            title += f"\ntruth: {class_names[int(labels[i])]}"
        left.set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def randomization_comparison(images: torch.Tensor, heatmaps: Mapping[str, torch.Tensor],
                             mean, std,
                             correlations: Mapping[str, torch.Tensor] | None = None) -> Figure:
    """The sanity check of Adebayo et al. (2018) as pictures: one row per photo, the photo,
    then one heatmap per network (e.g. trained, classifier randomised, all randomised), each
    titled with its rank correlation to the first when given.

    Args:
        images: the normalised photos, float ``(N, 3, H, W)``; mean, std: their normalisation.
        heatmaps: ``{column title: (N, H, W) heatmaps}``, the trained network's first.
        correlations: ``{column title: (N,) rank correlations with the first column}``, e.g.
            ``SanityCheck.correlations`` (NaN, for an empty heatmap, is shown as such).

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'A sanity check'.
    """
    from landmarklib.explain import overlay

    pictures = _pictures(images, mean, std)
    fig, axes = plt.subplots(len(pictures), 1 + len(heatmaps), squeeze=False,
                             figsize=(2.3 * (1 + len(heatmaps)), 2.4 * len(pictures)))
    for ax in axes.flat:
        ax.axis("off")
    for row, picture in zip(axes, pictures):
        row[0].imshow(picture)
    for column, (title, maps) in enumerate(heatmaps.items(), start=1):
        for i, picture in enumerate(pictures):
            axes[i, column].imshow(overlay(picture, maps[i]))
            rho = (correlations or {}).get(title)
            label = title if rho is None else f"{title}\nrank corr. {float(rho[i]):.2f}"
            if rho is not None and math.isnan(float(rho[i])):  # nothing speaks for the class
                label = f"{title}\nempty heatmap"
            axes[i, column].set_title(label, fontsize=8)
    axes[0, 0].set_title("photo", fontsize=8)
    fig.tight_layout()
    return fig

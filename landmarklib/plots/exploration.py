"""Figures of data exploration (notebook 01): class counts, photos, sizes, pixel values."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from PIL import Image


def class_counts(counts: Mapping[str, Mapping[str, int]],
                 title: str = "Photos per class") -> Figure:
    """Horizontal bars of photos per class, one colour per split.

    Args:
        counts: ``counts[split][class_name]`` = number of photos, e.g.
            ``{"train": report.counts("train"), "test": report.counts("test")}`` (display
            names or folder names as keys).

    Taught in notebooks/01_data_exploration.ipynb, 'How many photos per class?'.
    """
    splits = list(counts)
    names = list(counts[splits[0]])
    fig, ax = plt.subplots(figsize=(8, max(3, 0.22 * len(names) + 1)))
    left = np.zeros(len(names))
    for split in splits:
        values = np.array([counts[split].get(n, 0) for n in names])
        ax.barh(names, values, left=left, label=split)
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("photos")
    ax.set_title(title)
    ax.legend()
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig


def sample_grid(
    samples: Sequence[tuple[str | os.PathLike, int]],
    class_names: Sequence[str],
    columns: int = 6,
    titles: Sequence[str] | None = None,
) -> Figure:
    """A grid of photos, each titled with its class's display name (or the given titles).

    Args:
        samples: ``(path, class_id)`` pairs to show.
        class_names: display names in class-id order.
        columns: photos per row.
        titles: one title per photo instead of the class name.

    Taught in notebooks/01_data_exploration.ipynb, 'A look at the photos'.
    """
    from landmarklib.images import open_image

    images = [open_image(path, short_side=256) for path, _ in samples]
    return picture_grid(images, titles or [class_names[label] for _, label in samples], columns)


def picture_grid(pictures: Sequence[Image.Image], titles: Sequence[str],
                 columns: int = 6) -> Figure:
    """Pictures (PIL images: photos, heatmaps over photos) in a grid, each with its title.

    Taught in notebooks/04_inference_and_app.ipynb, 'Why that answer?'.
    """
    rows = max(1, math.ceil(len(pictures) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, picture, title in zip(axes.flat, pictures, titles):
        picture = picture.copy()
        picture.thumbnail((256, 256))
        ax.imshow(picture)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def image_sizes(sizes: np.ndarray, title: str = "Photo sizes") -> Figure:
    """Scatter of photo width against height, with histograms of the long side.

    Args:
        sizes: ``(N, 2)`` array of (width, height) in pixels, e.g. from
            :func:`landmarklib.data.image_sizes`.

    Taught in notebooks/01_data_exploration.ipynb, 'How big are the photos?'.
    """
    sizes = np.asarray(sizes)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(sizes[:, 0], sizes[:, 1], s=6, alpha=0.4)
    left.set_xlabel("width (px)")
    left.set_ylabel("height (px)")
    left.set_title(title)
    right.hist(sizes.max(axis=1), bins=30, label="long side")
    right.hist(sizes.min(axis=1), bins=30, alpha=0.6, label="short side")
    right.set_xlabel("pixels")
    right.set_ylabel("photos")
    right.legend()
    fig.tight_layout()
    return fig


def channel_histograms(before: torch.Tensor, after: torch.Tensor, bins: int = 60) -> Figure:
    """RGB histograms of pixel values before and after normalisation.

    Args:
        before: float tensor ``(N, 3, H, W)`` of pixel values in [0, 1].
        after: the same pixels normalised, ``(N, 3, H, W)``; after normalisation each channel
            should be centred on 0 with a standard deviation of about 1.

    Taught in notebooks/01_data_exploration.ipynb, 'Normalisation'.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, pixels, title in ((axes[0], before, "before: values in [0, 1]"),
                              (axes[1], after, "after: (x - mean) / std")):
        for channel, colour in enumerate(("red", "green", "blue")):
            values = pixels[:, channel].flatten().numpy()
            ax.hist(values, bins=bins, color=colour, alpha=0.45, label=colour, density=True)
        ax.set_title(title)
        ax.set_xlabel("pixel value")
        ax.legend()
    axes[0].set_ylabel("density")
    fig.tight_layout()
    return fig


def image_batch(images: torch.Tensor, labels: Sequence[int], class_names: Sequence[str],
                mean, std, columns: int = 8) -> Figure:
    """Show a normalised batch ``(B, 3, H, W)`` as pictures (what the network sees).

    Taught in notebooks/01_data_exploration.ipynb, 'What the network sees'.
    """
    from landmarklib.data import denormalize

    images = denormalize(images.detach().cpu().float(), mean, std)
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, labels):
        ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(class_names[int(label)], fontsize=7)
    fig.tight_layout()
    return fig


def photo(image: Image.Image, title: str, heatmap: Image.Image | None = None) -> Figure:
    """One photo with a title, and beside it its heatmap if given (used by
    :func:`landmarklib.inference.suggest_locations`)."""
    pictures = [image] if heatmap is None else [image, heatmap]
    fig, axes = plt.subplots(1, len(pictures), figsize=(5 * len(pictures), 5), squeeze=False)
    for ax, picture in zip(axes[0], pictures):
        ax.imshow(picture)
        ax.axis("off")
    fig.suptitle(title, fontsize=11, wrap=True)
    fig.tight_layout()
    return fig

"""Every matplotlib figure the notebooks show.

Each function draws one figure and returns it (``matplotlib.figure.Figure``), so a notebook
shows it and a script can ``fig.savefig(...)`` it. Nothing here computes results: the data
comes from :mod:`landmarklib.data`, :mod:`landmarklib.fitting` and
:mod:`landmarklib.evaluation`. :class:`LivePlot` redraws the loss curves during training.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

# ------------------------------------------------------------------------- data exploration


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

    rows = max(1, math.ceil(len(samples) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, (path, label)) in enumerate(zip(axes.flat, samples)):
        image = open_image(path)
        image.thumbnail((256, 256))
        ax.imshow(image)
        ax.set_title(titles[i] if titles else class_names[label], fontsize=8)
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


def photo(image: Image.Image, title: str) -> Figure:
    """One photo with a title (used by :func:`landmarklib.inference.suggest_locations`)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(image)
    ax.set_title(title, fontsize=11, wrap=True)
    ax.axis("off")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training curves


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


# ------------------------------------------------------------------------------ evaluation


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


# ------------------------------------------------------------ what the network looks at


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

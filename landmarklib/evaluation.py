"""How good is a trained model? Predictions, accuracy, top-k, per-class, confusion, mistakes.

Read top to bottom:

1. :func:`predict` runs a model over a loader and collects its log-probabilities and the labels.
2. :func:`summarize` turns those into an :class:`EvaluationResult` (loss, accuracy and "N/total
   correct", top-3 and top-5 accuracy, accuracy per class, confusion matrix);
   :func:`evaluate_model` does both steps.
3. :func:`most_confident_mistakes` picks the photos for a gallery of mistakes.

This module returns numbers, not figures: :mod:`landmarklib.plots` draws them. Use it on the
test split only once, at the end; choosing a model by its test accuracy would make that
accuracy an optimistic estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from landmarklib.hardware import autocast, resolve_precision

__all__ = ["predict", "progress_bar", "EvaluationResult", "summarize", "evaluate_model",
           "most_confident_mistakes"]


def predict(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    loader: Iterable,
    device: torch.device | str | None = None,
    progress: bool = True,
    *,
    precision: str | None = "float32",
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    desc: str = "predict",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over every batch of ``loader``, in eval mode, without gradients.

    The one loop in landmarklib that runs a network over data: evaluation, validation and
    feature extraction all call it. Eval mode switches dropout off and makes BatchNorm use its
    running statistics. An unshuffled loader's result ``i`` is ``loader.dataset[i]``.

    Args:
        model: a module, or a function of a batch (e.g. ``model.from_activations``), mapping
            float ``(B, ...)`` to ``(B, ...)`` (log-probabilities ``(B, C)``, features, ...).
        loader: yields ``(inputs, labels)``: float ``(B, ...)`` (cast to float32) and int64
            ``(B,)``; empty batches (no photo decoded) are skipped.
        device: where to run (a module is moved there); default: where the module is.
        progress, desc: a progress bar and its label.
        precision: see :mod:`landmarklib.hardware` (default float32; ``None``: the default).
        dtype: dtype of the returned outputs (bfloat16 halves the memory of activation maps).
        channels_last: run 4-D inputs and the module channels-last (NHWC), faster for
            convolutions on most CPUs and recent GPUs.

    Returns:
        ``(outputs, labels)`` on the CPU, in the loader's order: ``(N, ...)`` in ``dtype`` and
        int64 ``(N,)``, ordinary tensors (usable for training).

    Raises:
        ValueError: the loader gave no photo.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Testing the model'.
    """
    device = _ready(model, device, channels_last)
    precision = resolve_precision(precision, device)
    outputs, all_labels = [], []
    bar = progress_bar(loader, desc, progress)
    with torch.inference_mode(), autocast(device, precision):
        for inputs, labels in loader:
            bar.update()
            if len(labels) == 0:
                continue
            inputs = inputs.to(device, torch.float32, non_blocking=True)
            if channels_last and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            outputs.append(model(inputs).to(dtype).cpu())
            all_labels.append(torch.as_tensor(labels, dtype=torch.int64))
    bar.close()
    if not all_labels:
        raise ValueError("the loader gave no photo")
    return torch.cat(outputs), torch.cat(all_labels)


def _ready(model, device, channels_last: bool) -> torch.device:
    """Put the module behind ``model`` (itself, or the owner of a method such as
    ``model.from_activations``) in eval mode on ``device``; returns the device."""
    module = getattr(model, "__self__", model)
    if isinstance(module, nn.Module):
        parameter = next(module.parameters(), None)
        device = device or (parameter.device if parameter is not None else "cpu")
        module.to(device).eval()
        if channels_last:
            module.to(memory_format=torch.channels_last)
    return torch.device(device or "cpu")


def progress_bar(loader, desc: str, enabled: bool = True, leave: bool = False):
    """A tqdm bar counting the batches of ``loader``, updated by hand.

    (``tqdm(loader)`` would call ``iter(loader)`` once more than the loop does: for a
    DataLoader that starts an extra pass, which draws from its shuffling generator, changes the
    order of the batches, and leaves worker processes behind that print a shutdown traceback.)

    Returns:
        A ``tqdm`` bar of ``len(loader)`` batches: call ``update()`` per batch, ``close()`` after.
    """
    total = len(loader) if hasattr(loader, "__len__") else None
    return tqdm(total=total, desc=desc, leave=leave, disable=not enabled, unit="batch")


@dataclass
class EvaluationResult:
    """Every number :func:`summarize` measures on one split.

    Attributes:
        loss: mean negative log-probability of the correct class (NLL, no label smoothing).
        accuracy: share of photos whose most probable class is the correct one, in [0, 1].
        correct, total: the same as a count: ``correct`` of ``total`` photos.
        top3, top5: share of photos whose correct class is among the 3 (5) most probable.
        per_class_accuracy: float64 ``(C,)``, accuracy on the photos of each class (NaN for a
            class with no photo in the split).
        confusion: int64 ``(C, C)``; ``confusion[i, j]`` is the number of photos of class ``i``
            predicted as class ``j`` (rows: truth, columns: prediction; the diagonal is correct).
        class_names: ``C`` names in class-id order.
        split: what was evaluated, for printing (``"test"`` or ``"validation"``).
        log_probs, labels: the predictions it was computed from: float32 ``(N, C)`` and
            int64 ``(N,)`` (for :func:`most_confident_mistakes`).
    """

    loss: float
    accuracy: float
    correct: int
    total: int
    top3: float
    top5: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    class_names: list[str]
    split: str = "test"
    log_probs: torch.Tensor | None = field(default=None, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return (
            f"{self.split.capitalize()} loss {self.loss:.3f}, accuracy {self.accuracy:.1%} "
            f"({self.correct}/{self.total}), top-3 {self.top3:.1%}, top-5 {self.top5:.1%}"
        )

    def metrics(self) -> dict[str, float | int]:
        """The headline numbers as a model file records them: ``{"<split>_accuracy",
        "<split>_correct", "<split>_total", "<split>_top3", "<split>_top5"}``."""
        return {f"{self.split}_{name}": getattr(self, name)
                for name in ("accuracy", "correct", "total", "top3", "top5")}

    def by_class(self) -> list[tuple[str, float]]:
        """``(class name, accuracy)`` for every class, worst first (classes with no photo last)."""
        order = np.argsort(np.nan_to_num(self.per_class_accuracy, nan=np.inf), kind="stable")
        return [(self.class_names[i], float(self.per_class_accuracy[i])) for i in order]

    def most_confused(self, k: int = 10) -> list[tuple[str, str, int]]:
        """The ``k`` largest off-diagonal cells of the confusion matrix, as
        ``(true class, predicted class, number of photos)``, largest first, zeros left out."""
        off_diagonal = self.confusion.copy()
        np.fill_diagonal(off_diagonal, 0)
        cells = np.argsort(off_diagonal, axis=None, kind="stable")[::-1][:k]
        pairs = [np.unravel_index(c, off_diagonal.shape) for c in cells]
        return [(self.class_names[i], self.class_names[j], int(off_diagonal[i, j]))
                for i, j in pairs if off_diagonal[i, j] > 0]

    def to_dict(self) -> dict:
        """The numbers as plain Python values (lists for the arrays), e.g. for JSON."""
        return {
            "split": self.split, "loss": self.loss, "accuracy": self.accuracy,
            "correct": self.correct, "total": self.total, "top3": self.top3, "top5": self.top5,
            "per_class_accuracy": self.per_class_accuracy.tolist(),
            "confusion": self.confusion.tolist(), "class_names": list(self.class_names),
        }


def summarize(
    log_probs: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] | None = None,
    split: str = "test",
) -> EvaluationResult:
    """Measure loss, accuracy, top-k, per-class accuracy and the confusion matrix.

    Args:
        log_probs: float ``(N, C)`` log-probabilities (as :func:`predict` returns them).
        labels: int64 ``(N,)`` true class ids in ``[0, C)``.
        class_names: ``C`` names (default ``"0"``, ``"1"``, ...).
        split: name of the split, for printing.

    Returns:
        An :class:`EvaluationResult`. With fewer than 5 (or 3) classes, top-5 (top-3) accuracy
        is that of all classes, i.e. 1.0.

    Raises:
        ValueError: shapes that do not match, no photo, or ``len(class_names) != C``.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Testing the model'.
    """
    if log_probs.ndim != 2 or labels.shape != log_probs.shape[:1] or len(labels) == 0:
        raise ValueError(f"expected log_probs (N, C) and labels (N,) with N > 0, got "
                         f"{tuple(log_probs.shape)} and {tuple(labels.shape)}")
    n_classes = log_probs.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} classes")
    log_probs, labels = log_probs.float(), labels.long()
    confusion, top3, top5 = _counts(log_probs, labels)
    per_class_total = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(per_class_total > 0, np.diag(confusion) / per_class_total, np.nan)
    correct = int(np.trace(confusion))
    return EvaluationResult(
        loss=F.nll_loss(log_probs, labels).item(), accuracy=correct / len(labels),
        correct=correct, total=len(labels), top3=top3, top5=top5,
        per_class_accuracy=per_class.astype(np.float64), confusion=confusion, class_names=names,
        split=split, log_probs=log_probs, labels=labels)


def _counts(log_probs: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, float, float]:
    """The confusion matrix (int64 ``(C, C)``) and the top-3 and top-5 accuracy.

    torchmetrics computes them: well-tested implementations that check their inputs (labels in
    range, shapes) and that readers may know from elsewhere. (The per-class accuracy is read off
    the confusion matrix rather than taken from ``multiclass_accuracy(average=None)``, which
    reports 0 rather than "unknown" for a class with no photo in the split.)
    """
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_confusion_matrix,
    )

    n_classes = log_probs.shape[1]
    confusion = multiclass_confusion_matrix(log_probs, labels, n_classes).numpy().astype(np.int64)
    top3, top5 = (multiclass_accuracy(log_probs, labels, n_classes, average="micro",
                                      top_k=min(k, n_classes)).item() for k in (3, 5))
    return confusion, top3, top5


def evaluate_model(
    model: nn.Module,
    loader: Iterable,
    class_names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    split: str = "test",
    progress: bool = True,
) -> EvaluationResult:
    """Run ``model`` over ``loader`` (:func:`predict`) and measure everything (:func:`summarize`).

    Example::

        result = evaluate_model(model, loaders.test, loaders.class_names)
        print(result)  # Test loss 0.912, accuracy 76.4% (840/1100), top-3 89.1%, top-5 93.2%

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Testing the model'.
    """
    log_probs, labels = predict(model, loader, device, progress, desc=f"{split} photos")
    return summarize(log_probs, labels, class_names, split=split)


def most_confident_mistakes(
    log_probs: torch.Tensor, labels: torch.Tensor, k: int = 12
) -> torch.Tensor:
    """The photos the model got wrong while being most sure of itself, for a gallery.

    Args:
        log_probs: float ``(N, C)`` log-probabilities; labels: int64 ``(N,)`` true classes.
        k: how many to return at most.

    Returns:
        int64 ``(m,)`` indices into the ``N`` photos, ``m = min(k, number of mistakes)``, sorted
        by the probability given to the (wrong) predicted class, highest first. With an
        unshuffled loader, photo ``i`` is ``loader.dataset[i]``.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Testing the model'.
    """
    confidence, predicted = log_probs.max(dim=1)
    wrong = torch.nonzero(predicted != labels).flatten()
    order = torch.argsort(confidence[wrong], descending=True, stable=True)
    return wrong[order][:k]

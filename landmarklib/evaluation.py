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

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix
from tqdm.auto import tqdm

__all__ = ["predict", "EvaluationResult", "summarize", "evaluate_model", "most_confident_mistakes"]


def predict(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of ``model`` for every photo of ``loader``, with the true labels.

    The model is put in eval mode and run under :func:`torch.inference_mode`. The loader must
    not shuffle if the results are to be matched back to ``loader.dataset[i]``.

    Args:
        model: maps float32 ``(B, 3, H, W)`` to log-probabilities ``(B, C)``.
        loader: yields ``(images, labels)``: float32 ``(B, 3, H, W)`` and int64 ``(B,)``.
        device: where to run (the model is moved there); default: where the model is.
        progress: show a progress bar.

    Returns:
        ``(log_probs, labels)`` on the CPU: float32 ``(N, C)`` and int64 ``(N,)``, in the
        loader's order.

    Raises:
        ValueError: the loader gave no batch.

    Taught in notebooks/02_cnn_from_scratch.ipynb, 'Testing the model'.
    """
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    model.to(device).eval()
    all_log_probs, all_labels = [], []
    with torch.inference_mode():
        for images, labels in tqdm(loader, desc="predict", leave=False, disable=not progress):
            log_probs = model(images.to(device, non_blocking=True))
            all_log_probs.append(log_probs.float().cpu())
            all_labels.append(torch.as_tensor(labels, dtype=torch.int64).cpu())
    if not all_labels:
        raise ValueError("the loader gave no batch")
    return torch.cat(all_log_probs), torch.cat(all_labels)


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
        raise ValueError(
            f"expected log_probs (N, C) and labels (N,) with N > 0, got {tuple(log_probs.shape)} "
            f"and {tuple(labels.shape)}"
        )
    n_classes = log_probs.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} classes")
    log_probs, labels = log_probs.float(), labels.long()
    # torchmetrics for top-k accuracy and the confusion matrix: well-tested implementations that
    # check their inputs (labels in range, shapes) and that readers may know from elsewhere.
    # The per-class accuracy is read off the confusion matrix instead of taken from
    # multiclass_accuracy(average=None), which reports 0 rather than "unknown" for a class with
    # no photo in the split.
    def top_k(k: int) -> float:
        return multiclass_accuracy(log_probs, labels, n_classes, average="micro",
                                   top_k=min(k, n_classes)).item()

    confusion = multiclass_confusion_matrix(log_probs, labels, n_classes).numpy().astype(np.int64)
    per_class_total = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(per_class_total > 0, np.diag(confusion) / per_class_total, np.nan)
    correct = int(np.trace(confusion))
    return EvaluationResult(
        loss=F.nll_loss(log_probs, labels).item(),
        accuracy=correct / len(labels),
        correct=correct,
        total=len(labels),
        top3=top_k(3),
        top5=top_k(5),
        per_class_accuracy=per_class.astype(np.float64),
        confusion=confusion,
        class_names=names,
        split=split,
        log_probs=log_probs,
        labels=labels,
    )


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
    log_probs, labels = predict(model, loader, device=device, progress=progress)
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

"""How far to trust an answer: calibrated probabilities, and "I don't know".

A network trained with cross-entropy is often over- or under-confident: among the photos it
gives 90%, fewer (or more) than 90% are right. Two tools fix what a user sees:

1. **Temperature scaling** (Guo et al., "On Calibration of Modern Neural Networks", ICML
   2017): divide the log-probabilities by one number ``T`` fitted on the validation split
   (:func:`fit_temperature`), then softmax (:func:`calibrate`). The ranking of the classes never
   changes, only how sure the model says it is. :func:`calibration_error` measures the
   expected calibration error (ECE) before and after; :func:`reliability` gives the numbers of a
   reliability diagram (:func:`landmarklib.plots.reliability_diagram`).
2. **Known or unknown**: a score per photo, higher for photos of landmarks the model knows,
   and a threshold on it (:func:`choose_threshold`, chosen on the validation split for a stated
   goal such as "accept 95% of photos of known landmarks"). :data:`SCORES` lists the scores
   compared; :func:`detection_metrics` measures how well one separates known from unknown
   photos (AUROC and the false-positive rate at 95% true-positive rate, the numbers the
   out-of-distribution literature reports).

Everything a prediction needs (:func:`calibrate`, :func:`known_score`) and the fit
(:func:`fit_temperature`) is NumPy only; the measurements (:func:`calibration_error`,
:func:`detection_metrics`) are torchmetrics', imported when called.

Taught in notebooks/05_beyond_the_landmarks.ipynb, 'How sure is the model?' and 'Known or
unknown'.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCORES", "COMBINED", "IMAGENET_VETO", "VETOES", "NEEDS_IMAGENET", "calibrate",
           "fit_temperature", "calibration_error", "reliability", "log_softmax", "known_score",
           "roc_curve", "detection_metrics", "choose_threshold", "combine_scores"]

#: The scores that tell photos of known landmarks (high) from the rest (low), by name.
SCORES = {
    "msp": "maximum softmax probability, calibrated (Hendrycks & Gimpel, ICLR 2017)",
    "energy": "negative energy, logsumexp of the logits (Liu et al., NeurIPS 2020)",
    "max_logit": "maximum logit (Hendrycks et al., ICML 2022)",
    "knn": "cosine similarity to the nearest training photo's embedding (Sun et al., ICML 2022)",
    "imagenet_knn": "cosine similarity to the nearest training photo's ImageNet embedding (the "
                    "frozen trunk's pooled features; fine-tuned models only)",
    "msp+knn": "msp and knn together: the sum of the logs of their ranks among the validation "
               "photos' scores (Fisher's method of combining p-values)",
    "msp+knn+imagenet_knn": "msp, knn and imagenet_knn together, the same way",
    "msp+knn+imagenet_veto": "msp+knn, and imagenet_knn as a veto: its rank counts only below "
                             "the share IMAGENET_VETO of the validation photos",
}

#: The combined scores of :data:`SCORES`, and the scores each combines.
COMBINED = {"msp+knn": ("msp", "knn"), "msp+knn+imagenet_knn": ("msp", "knn", "imagenet_knn"),
            "msp+knn+imagenet_veto": ("msp", "knn", "imagenet_knn")}

#: In ``"msp+knn+imagenet_veto"``, the ImageNet similarity counts only for a photo less similar
#: to the nearest training photo than all but this share of the validation photos are: one
#: unlike every landmark photo. A landmark the model does not know still looks like a landmark
#: in ImageNet's features, so, counted in full, they hide it among the known ones. Chosen on
#: validation photos over three sets of held-out landmarks (``benchmarks/beyond.py
#: --held-seed``). With fewer than ``1 / IMAGENET_VETO`` (50) validation photos it never acts (a
#: share is at least ``1 / (V + 1)``), and the score is ``msp+knn``'s (landmarks44 has 880
#: validation photos).
IMAGENET_VETO = 0.02

#: The parts of a combined score counted as a veto only, and below which share.
VETOES = {"msp+knn+imagenet_veto": {"imagenet_knn": IMAGENET_VETO}}

#: The scores that need ImageNet embeddings (a deployment file of a fine-tuned model).
NEEDS_IMAGENET = ("imagenet_knn", "msp+knn+imagenet_knn", "msp+knn+imagenet_veto")


def log_softmax(scores: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``scores - logsumexp(scores)`` along the last axis, computed stably in float64 and
    returned in ``dtype`` (the same shape)."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(dtype)


def calibrate(log_probs: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities: ``softmax(log_probs / temperature)``.

    For one network ``softmax(log_probs / T) == softmax(logits / T)`` (log-probabilities are
    the logits minus one number per photo). For an ensemble (the average of its members'
    probabilities, :class:`landmarklib.transfer.FineTunedModel`) there are no single logits
    behind the average, so the temperature scales the log of the averaged probability, which
    is what :func:`fit_temperature` fitted.

    Args:
        log_probs: float ``(N, C)`` (or ``(C,)``).
        temperature: ``T > 0`` from :func:`fit_temperature` (1: unchanged).

    Returns:
        float32, the shape of ``log_probs``, each row summing to 1.

    Raises:
        ValueError: ``temperature`` is not a positive number.
    """
    if not temperature > 0:
        raise ValueError(f"the temperature must be a positive number, got {temperature!r}")
    return np.exp(log_softmax(np.asarray(log_probs, dtype=np.float64) / temperature))


def fit_temperature(log_probs: np.ndarray, labels: np.ndarray, max_iter: int = 100) -> float:
    """The temperature ``T`` that minimises the negative log-likelihood (cross-entropy) of
    ``softmax(log_probs / T)`` on labelled photos: temperature scaling (Guo et al., 2017).

    Fit it on the validation split, never on the photos the model trained on (there it is
    over-confident) nor on the test split (then the test no longer measures it). The
    negative log-likelihood is a convex function of ``b = 1 / T``, with first derivative
    ``mean(E_p[z] - z_label)`` and second ``mean(Var_p[z])`` (``z`` the log-probabilities,
    ``p = softmax(b z)``), so Newton's method, halving a step that does not lower the loss,
    finds the minimum in a few steps; in float64, the same answer on every CPU.

    Args:
        log_probs: float ``(N, C)``, the model's log-probabilities (or logits).
        labels: int ``(N,)``, the true class ids.
        max_iter: Newton steps at most.

    Returns:
        ``T`` (> 1: the model was over-confident; < 1: under-confident, e.g. after label
        smoothing).

    Raises:
        ValueError: the shapes do not match, or there are no photos.
    """
    z, labels = np.asarray(log_probs, dtype=np.float64), np.asarray(labels)
    if z.ndim != 2 or len(z) != len(labels) or not len(labels):
        raise ValueError(f"need log-probabilities (N, C) and N labels, got {z.shape} "
                         f"and {labels.shape}")
    z = z - z.max(axis=1, keepdims=True)  # the loss is the same; exp() stays finite
    true = z[np.arange(len(z)), labels]

    def loss(b: float) -> float:
        return float(-np.mean(log_softmax(b * z, np.float64)[np.arange(len(z)), labels]))

    b, current = 1.0, loss(1.0)
    for _ in range(max_iter):
        p = np.exp(log_softmax(b * z, np.float64))
        mean_z = (p * z).sum(axis=1)
        gradient = np.mean(mean_z - true)
        step = gradient / max(np.mean((p * z * z).sum(axis=1) - mean_z**2), 1e-12)
        while b - step <= 0 or loss(b - step) > current:
            step /= 2
            if abs(step) < 1e-12 * b:
                return 1 / b
        b, previous, current = b - step, current, loss(b - step)
        if previous - current < 1e-12:
            break
    return 1 / b


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error (ECE): the photos sorted into ``bins`` equal-width bins of
    top-1 probability, the gap between each bin's accuracy and mean probability, weighted by
    its share of the photos (Naeini et al., 2015; 15 bins as in Guo et al., 2017).

    Computed by torchmetrics (``MulticlassCalibrationError``, ``norm="l1"``).

    Args:
        probabilities: float ``(N, C)``, rows summing to 1; labels: int ``(N,)``.

    Returns:
        The ECE, from 0 (perfectly calibrated) to 1.
    """
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    probabilities = torch.as_tensor(np.asarray(probabilities, dtype=np.float32))
    return float(multiclass_calibration_error(
        probabilities, torch.as_tensor(np.asarray(labels), dtype=torch.int64),
        num_classes=probabilities.shape[1], n_bins=bins, norm="l1"))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict:
    """The numbers of a reliability diagram: per bin of top-1 probability, the photos' mean
    probability and their accuracy.

    Args:
        probabilities: float ``(N, C)``; labels: int ``(N,)``; bins: equal-width bins of
            [0, 1] (those of :func:`calibration_error`).

    Returns:
        ``{"edges": (bins + 1,), "confidence": (bins,), "accuracy": (bins,), "count":
        (bins,)}`` (NumPy arrays; NaN confidence and accuracy in empty bins).
    """
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=bins) / count
        accuracy = np.bincount(which, correct.astype(float), minlength=bins) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": accuracy, "count": count}


def known_score(kind: str, probabilities: np.ndarray | None = None,
                logits: np.ndarray | None = None,
                similarity: np.ndarray | None = None,
                reference: dict[str, np.ndarray] | None = None,
                imagenet_similarity: np.ndarray | None = None) -> np.ndarray:
    """A score per photo, higher for photos of landmarks the model knows (:data:`SCORES`).

    Args:
        kind: ``"msp"`` (needs ``probabilities``, calibrated, ``(N, C)``), ``"energy"`` or
            ``"max_logit"`` (need ``logits`` ``(N, C)``), ``"knn"`` (needs ``similarity``
            ``(N,)``, the cosine similarity to the nearest training photo,
            :func:`landmarklib.embeddings.nearest`), ``"imagenet_knn"`` (needs
            ``imagenet_similarity`` ``(N,)``, the same with the ImageNet embeddings), or a
            combination of :data:`COMBINED` (needs what its parts need, and ``reference``).
        reference: for a combination: ``{"msp": (V,), "knn": (V,), ...}``, its parts' scores of
            the validation photos (:func:`combine_scores`).

    Returns:
        float64 ``(N,)``.

    Raises:
        ValueError: an unknown ``kind``, or an array it needs is missing.
    """
    if kind in COMBINED:
        if reference is None:
            raise ValueError(f"the {kind!r} score needs the validation photos' scores")
        return combine_scores({name: known_score(name, probabilities, logits, similarity,
                                                 imagenet_similarity=imagenet_similarity)
                               for name in COMBINED[kind]}, reference, VETOES.get(kind))
    needs = {"msp": ("probabilities", probabilities), "energy": ("logits", logits),
             "max_logit": ("logits", logits), "knn": ("similarity", similarity),
             "imagenet_knn": ("ImageNet embeddings' similarity (the fourth output of a fine-tuned "
                              "model's deployment file; export an older file again with "
                              "`landmarklib export`)", imagenet_similarity)}
    if kind not in needs:
        raise ValueError(f"unknown score {kind!r}; choose from {', '.join(SCORES)}")
    name, values = needs[kind]
    if values is None:
        raise ValueError(f"the {kind!r} score needs the {name}")
    values = np.asarray(values, dtype=np.float64)
    if kind in ("msp", "max_logit"):
        return values.max(axis=1)
    if kind == "energy":
        top = values.max(axis=1)
        return top + np.log(np.exp(values - top[:, None]).sum(axis=1))
    return values.reshape(len(values))


def combine_scores(scores: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                   vetoes: dict[str, float] | None = None) -> np.ndarray:
    """Several known-landmark scores as one: each score becomes its rank among the
    validation photos' scores (the share of them at or below it, ``(r + 1) / (V + 1)``: an
    empirical p-value of "this photo is as typical as a photo of a known landmark"), and the
    logs of these shares are summed (Fisher's method of combining p-values, "Statistical
    Methods for Research Workers", 1925). Scores in different units (a probability, a
    cosine similarity) are combined without weights to choose; a photo must look known to
    both to score high.

    Args:
        scores: ``{name: float (N,)}``, each higher for known photos.
        reference: ``{name: float (V,)}``, the same scores of the validation photos (the
            photos the threshold is chosen on), for every name in ``scores``.
        vetoes: ``{name: q}``: that score counts only where its share is below ``q``, as
            ``log(share / q)`` (0 above ``q``, continuous): a veto, not evidence for "known".

    Returns:
        float64 ``(N,)``, at most 0 (0: above every validation photo on every score).
    """
    total = 0.0
    for name, values in scores.items():
        known = np.sort(np.asarray(reference[name], dtype=np.float64))
        below = np.searchsorted(known, np.asarray(values, dtype=np.float64), side="right")
        log_share = np.log((below + 1) / (len(known) + 1))
        veto = (vetoes or {}).get(name)
        total = total + (log_share if veto is None else np.minimum(log_share - np.log(veto), 0))
    return np.asarray(total, dtype=np.float64)


def _ranked(known: np.ndarray, unknown: np.ndarray):
    """Scores as torchmetrics reads them: their ranks scaled to [0, 1] (float64; ties kept,
    order unchanged; torchmetrics would squash scores outside [0, 1] with a sigmoid, which
    rounds large ones to the same number), and targets (1: known)."""
    import torch

    scores = np.concatenate([np.asarray(known, float), np.asarray(unknown, float)])
    _, ranks = np.unique(scores, return_inverse=True)
    preds = torch.as_tensor(ranks / max(ranks.max(), 1), dtype=torch.float64)
    return preds, torch.cat([torch.ones(len(known)), torch.zeros(len(unknown))]).long()


def roc_curve(known: np.ndarray, unknown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of a score that separates photos of known landmarks (positives) from
    unknown photos: ``(false-positive rates, true-positive rates)``, float ``(T,)`` each, from
    the strictest threshold to the most lenient (torchmetrics ``binary_roc``)."""
    from torchmetrics.functional.classification import binary_roc

    fpr, tpr, _ = binary_roc(*_ranked(known, unknown))
    return fpr.numpy(), tpr.numpy()


def detection_metrics(known: np.ndarray, unknown: np.ndarray) -> dict[str, float]:
    """How well a score separates photos of known landmarks (positives) from unknown photos.

    Computed by torchmetrics (``binary_auroc``; :func:`roc_curve`).

    Args:
        known, unknown: float ``(N,)`` and ``(M,)``, scores from :func:`known_score`.

    Returns:
        ``{"auroc": ..., "fpr_at_95_tpr": ...}``: the area under the ROC curve (1: every known
        photo scores above every unknown one; 0.5: chance; 0: the score is upside down), and
        the share of unknown photos accepted by the strictest threshold that accepts 95% of
        the known ones (0 is best).
    """
    from torchmetrics.functional.classification import binary_auroc

    fpr, tpr = roc_curve(known, unknown)
    return {"auroc": float(binary_auroc(*_ranked(known, unknown))),
            "fpr_at_95_tpr": float(fpr[tpr >= 0.95].min())}


def choose_threshold(known: np.ndarray, accept: float = 0.95) -> float:
    """The threshold that accepts the share ``accept`` of photos of known landmarks.

    Choose it on the validation split (photos the model did not train on): the highest score
    ``t`` such that at least ``accept`` of ``known`` are ``>= t``.

    Args:
        known: float ``(N,)``, scores of validation photos (:func:`known_score`).
        accept: the goal, a share from 0 to 1.

    Returns:
        The threshold (a photo is accepted when its score is ``>= threshold``).

    Raises:
        ValueError: no scores, or ``accept`` outside (0, 1].
    """
    known = np.sort(np.asarray(known, dtype=np.float64))
    if not len(known) or not 0 < accept <= 1:
        raise ValueError(f"need scores and a share in (0, 1], got {len(known)} scores and "
                         f"{accept!r}")
    rejected = int(np.floor(len(known) * (1 - accept) + 1e-9))
    return float(known[rejected])

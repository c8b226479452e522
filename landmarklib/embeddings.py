"""Embeddings at work: the photos most similar to a new one, and answers with everything the
memory knows: the landmarks added to it (:mod:`landmarklib.adding`) and "I don't know".

Every function takes a model's memory (:class:`landmarklib.memory.Memory`, the file beside its
deployment file) and the deployment file's outputs for photos
(:func:`landmarklib.deployment.classify_photos`):

* :func:`nearest`: the remembered photos most similar to a new one, the evidence shown next
  to an answer: exact search, one matrix product of cosine similarities;
* :func:`recognise`: calibrated probabilities over the trained and the added landmarks, the
  known-landmark score and whether it passes the threshold, and the nearest photos;
* :func:`fit_calibration`: the temperature and the threshold, fitted on the validation split;
* :func:`project_2d`: embeddings as points on a map.

NumPy only at prediction time; :func:`fit_calibration` imports torch (for the fit).

Taught in notebooks/05_beyond_the_landmarks.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from landmarklib.adding import SHARPNESS, added_margin, claims, vouched
from landmarklib.calibration import (
    NEEDS_IMAGENET,
    SCORES,
    calibrate,
    calibration_error,
    choose_threshold,
    fit_temperature,
    known_score,
)
from landmarklib.memory import Memory

__all__ = ["DEFAULT_SCORE", "SCORE_WITHOUT_IMAGENET", "nearest", "project_2d", "Recognition",
           "recognise", "fit_calibration"]

#: The known-landmark score used by default: the maximum softmax probability and the
#: similarity to the nearest remembered photo, combined by their ranks among the validation
#: photos, with the same similarity in the ImageNet embeddings as a veto
#: (:func:`landmarklib.calibration.combine_scores`,
#: :data:`~landmarklib.calibration.IMAGENET_VETO`). Chosen on photos the test sets do not hold
#: (``benchmarks/beyond.py``, three sets of 4 held-out landmarks): the 40 landmarks'
#: validation photos against the held-out landmarks' training photos (near) and 500 of
#: caltech101's training photos (far). The ImageNet embeddings, never tuned to the landmarks,
#: tell photos of no landmark apart best; the fine-tuned ones and the probabilities, unknown
#: landmarks.
DEFAULT_SCORE = "msp+knn+imagenet_veto"

#: The default for a model without ImageNet embeddings (the network trained from scratch, a
#: frozen backbone with a head): the best of the scores it has on the same photos.
SCORE_WITHOUT_IMAGENET = "msp+knn"


def nearest(memory: Memory, embeddings: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` remembered photos most similar to each embedding: exact search, one matrix
    product of cosine similarities (a few milliseconds for thousands of photos; see
    ``benchmarks/beyond.py`` for larger collections).

    Args:
        memory: the training photos (and added photos) to search.
        embeddings: float ``(M, F)`` unit rows (or one ``(F,)``).
        k: how many neighbours.

    Returns:
        ``(indices, similarities)``: int64 and float32 ``(M, k)``, most similar first;
        ``memory.paths[i]`` and ``memory.labels[i]`` say which photo and class.
    """
    queries = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    return _top_k(queries @ memory.embeddings.astype(np.float32).T, k)


def _top_k(similarity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of each row of ``similarity`` ``(M, N)``: indices and values,
    largest first (one partial sort, then a sort of ``k`` values)."""
    k = min(k, similarity.shape[1])
    best = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, best, axis=1), axis=1, kind="stable")
    indices = np.take_along_axis(best, order, axis=1)
    return indices, np.take_along_axis(similarity, indices, axis=1)


def project_2d(embeddings: np.ndarray) -> np.ndarray:
    """The embeddings' two directions of largest variance (principal component analysis, by
    a singular value decomposition of the centred rows): float32 ``(N, 2)``, for a map of
    the photos (:func:`landmarklib.plots.embedding_map`). Each direction's sign is fixed (its
    largest weight positive), so the map is the same on every machine."""
    rows = np.asarray(embeddings, dtype=np.float64)
    rows = rows - rows.mean(axis=0)
    _, _, directions = np.linalg.svd(rows, full_matrices=False)
    directions = directions[:2]
    signs = np.sign(directions[np.arange(2), np.abs(directions).argmax(axis=1)])
    return (rows @ (directions * signs[:, None]).T).astype(np.float32)


# -------------------------------------------------------------- answering with the memory


@dataclass
class Recognition:
    """What :func:`recognise` concluded about ``N`` photos.

    Attributes:
        probabilities: float32 ``(N, C + A)``: calibrated, over ``memory.names``.
        score: float64 ``(N,)``: the known-landmark score ``memory.score``.
        known: bool ``(N,)``: the score reached ``memory.threshold`` (all true without one).
        neighbours, similarities: int64 and float32 ``(N, k)``: the most similar remembered
            photos (rows of ``memory``), most similar first.
    """

    probabilities: np.ndarray
    score: np.ndarray
    known: np.ndarray
    neighbours: np.ndarray
    similarities: np.ndarray


def recognise(memory: Memory, log_probs: np.ndarray, embeddings: np.ndarray,
              logits: np.ndarray | None = None, k: int = 3,
              imagenet: np.ndarray | None = None) -> Recognition:
    """Answer with everything the memory knows: calibrated probabilities over the trained and
    the added landmarks, the known-landmark score against the threshold, the nearest photos.

    The odds that a photo shows added landmark ``j`` rather than one of the trained
    landmarks are ``exp(SHARPNESS * (claim_j - margin))`` (:func:`added_margin`), where the
    claim compares its cosine similarity to the landmark's prototype with that to the nearest
    training photo, both after centring (:meth:`Memory.centred`; measured against nearest
    neighbours and class means for every class, and margins against the trained classes'
    means: ``benchmarks/beyond.py``); an added landmark gets no odds for a photo its own
    photos do not vouch for (:func:`landmarklib.adding.vouched`). The trained classes share
    the rest in proportion to their calibrated probabilities.

    Args:
        memory: the model's memory.
        log_probs, embeddings: float ``(N, C)`` and ``(N, F)``, the deployment file's outputs.
        logits: float ``(N, C)``, needed for the scores ``"energy"`` and ``"max_logit"``.
        k: how many nearest photos.
        imagenet: float ``(N, F')``, the ImageNet embeddings (the deployment file's fourth
            output), needed for the scores of :data:`landmarklib.calibration.NEEDS_IMAGENET`.

    Returns:
        A :class:`Recognition`.

    Raises:
        ValueError: the memory's score needs ``imagenet`` (or ``logits``) and none was given
            (a deployment file exported before it had them: export it again).
    """
    embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    probabilities = calibrate(np.atleast_2d(log_probs), memory.temperature)
    similarity = embeddings @ memory.embeddings.astype(np.float32).T
    extra = np.zeros((len(embeddings), 0))
    if memory.landmarks:
        centred = memory.centred(embeddings)
        claim = claims(memory, centred, centred @ memory.centred_embeddings.T,
                       probabilities.max(axis=1))
        extra = np.where(vouched(memory, embeddings, imagenet),
                         np.clip(SHARPNESS * (claim - memory.margin), -60, 60), -60.0)
        odds = np.exp(extra)
        probabilities = np.concatenate([probabilities, odds], axis=1) / (
            1 + odds.sum(axis=1, keepdims=True))
    if logits is not None:  # the added landmarks' logits: log-odds + logsumexp(logits)
        logits = np.atleast_2d(np.asarray(logits, np.float64))
        logits = np.concatenate([logits, extra + known_score("energy", logits=logits)[:, None]],
                                axis=1)
    neighbours, similarities = _top_k(similarity, k)
    score = _known(memory, probabilities.astype(np.float32), logits, similarity, imagenet)
    known = score >= memory.threshold if memory.threshold is not None else \
        np.ones(len(score), bool)
    return Recognition(probabilities.astype(np.float32), score, known, neighbours,
                       similarities)


def _known(memory: Memory, probabilities, logits, similarity, imagenet):
    """The known-landmark score ``memory.score`` of each photo ``(N,)``, from ``similarity``
    ``(N, R)``, the photos' cosine similarities to the remembered photos. A photo answered as
    an added landmark is judged by its similarity to that landmark's own photos; a combined
    score (the default) ranks it among the similarities of validation photos to as many photos
    of their own landmark (:meth:`Memory.references`), not to the hundreds of photos of a
    trained landmark. (A plain ``"knn"`` score compares it with the threshold as it is.)"""
    in_imagenet = None if imagenet is None or not len(memory.imagenet) else (
        np.atleast_2d(np.asarray(imagenet, np.float32)) @ memory.imagenet.astype(np.float32).T)
    score = known_score(memory.score, probabilities, logits, similarity.max(axis=1),
                        memory.references(), None if in_imagenet is None else
                        in_imagenet.max(axis=1))
    answered = probabilities.argmax(axis=1) - len(memory.class_names)
    for j, landmark in enumerate(memory.landmarks):
        rows, own = answered == j, memory.labels == len(memory.class_names) + j
        if rows.any():
            score[rows] = known_score(
                memory.score, probabilities[rows], None if logits is None else logits[rows],
                similarity[rows][:, own].max(axis=1), memory.references(len(landmark.photos)),
                None if in_imagenet is None else in_imagenet[rows][:, own].max(axis=1))
    return score


def fit_calibration(memory: Memory, answers: Iterable, labels, accept: float = 0.95,
                    score: str | None = None) -> tuple[Memory, dict]:
    """Fit the temperature and the "I don't know" threshold on the validation split.

    The temperature (:func:`landmarklib.calibration.fit_temperature`) is fitted on the
    log-probabilities; the threshold is the one that accepts the share ``accept`` of the
    validation photos by the ``score`` (:func:`landmarklib.calibration.choose_threshold`).

    Args:
        memory: from :func:`landmarklib.memory.build_memory` (from the training split).
        answers: :class:`~landmarklib.deployment.Answer` objects of the validation photos
            (photos that failed are left out), in the order of ``labels``.
        labels: their class ids.
        accept: the goal: the share of photos of known landmarks to accept.
        score: a name from :data:`landmarklib.calibration.SCORES` (default
            :data:`DEFAULT_SCORE`, or :data:`SCORE_WITHOUT_IMAGENET` for a memory without
            ImageNet embeddings).

    Returns:
        ``(memory, measured)``: the calibrated memory, and ``{"ece_before": ..., "ece_after":
        ..., "temperature": ..., "threshold": ...}`` on the validation photos (the ECE by
        :func:`landmarklib.calibration.calibration_error`, which imports torchmetrics).

    Raises:
        ValueError: no usable validation photo, an unknown score, a score that needs
            ImageNet embeddings for a memory without them, ``accept`` outside (0, 1].
    """
    score = score or (DEFAULT_SCORE if len(memory.imagenet) else SCORE_WITHOUT_IMAGENET)
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    if score in NEEDS_IMAGENET and not len(memory.imagenet):
        raise ValueError(f"the {score!r} score needs ImageNet embeddings, which only the "
                         "deployment file of a fine-tuned model has (an older file lacks them: "
                         "`landmarklib export MODEL.pt` again); choose another score")
    kept = [(a, int(c)) for a, c in zip(answers, labels) if a.error is None]
    if not kept:
        raise ValueError("no validation photo could be used")
    log_probs, logits, embeddings = (np.stack([getattr(a, name) for a, _ in kept])
                                     for name in ("log_probs", "logits", "embedding"))
    labels = np.array([c for _, c in kept])
    temperature = fit_temperature(log_probs, labels)
    probabilities = calibrate(log_probs, temperature)
    imagenet = np.stack([a.imagenet for a, _ in kept]) if len(memory.imagenet) else None
    memory = replace(memory, temperature=temperature, score=score, threshold=None,
                     accept=accept, valid_embeddings=embeddings.astype(np.float16),
                     valid_confidence=probabilities.max(axis=1),
                     valid_imagenet=np.zeros((0, 0), np.float16) if imagenet is None
                     else imagenet.astype(np.float16), valid_labels=labels)
    memory = replace(memory, margin=added_margin(memory))
    threshold = choose_threshold(recognise(memory, log_probs, embeddings, logits, 1,
                                           imagenet).score, accept)
    return replace(memory, threshold=threshold), {
        "ece_before": calibration_error(np.exp(log_probs), labels),
        "ece_after": calibration_error(probabilities, labels),
        "temperature": temperature, "threshold": threshold}

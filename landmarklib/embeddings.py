"""Embeddings at work: the photos most similar to a new one, landmarks added from a few
photos without retraining, and answers that say "I don't know".

Every function takes a model's memory (:class:`landmarklib.memory.Memory`, the file beside its
deployment file) and the deployment file's outputs for photos
(:func:`landmarklib.deployment.classify_photos`):

* :func:`nearest`: the remembered photos most similar to a new one, the evidence shown next
  to an answer: exact search, one matrix product of cosine similarities;
* :func:`add_landmark`, :func:`remove_landmark`: a landmark of your own, from at least
  :data:`MIN_PHOTOS` photos;
* :func:`recognise`: calibrated probabilities over the trained and the added landmarks, the
  known-landmark score and whether it passes the threshold, and the nearest photos;
* :func:`fit_calibration`: the temperature and the threshold, fitted on the validation split;
* :func:`project_2d`: embeddings as points on a map.

NumPy only at prediction time; :func:`fit_calibration` imports torch (for the fit).

Taught in notebooks/05_beyond_the_landmarks.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from landmarklib.calibration import (
    NEEDS_IMAGENET,
    SCORES,
    calibrate,
    calibration_error,
    choose_threshold,
    fit_temperature,
    known_score,
)
from landmarklib.memory import Landmark, Memory, embeddings_of
from landmarklib.places import place_for

__all__ = ["MIN_PHOTOS", "DEFAULT_SCORE", "SCORE_WITHOUT_IMAGENET", "TAKE_AT_MOST", "SHARPNESS",
           "nearest", "project_2d", "add_landmark", "remove_landmark", "added_margin",
           "Recognition", "recognise", "fit_calibration"]

#: The fewest photos a landmark can be added from.
MIN_PHOTOS = 3

#: The known-landmark score used by default: the maximum softmax probability and the
#: similarities to the nearest remembered photo, in the fine-tuned embeddings and in the
#: ImageNet ones, combined by their ranks among the validation photos
#: (:func:`landmarklib.calibration.combine_scores`). Chosen on photos the test sets do not
#: hold (``benchmarks/beyond.py``): the 40 landmarks' validation photos against the 4
#: held-out landmarks' training photos (near) and 500 of caltech101's training photos (far).
#: The ImageNet embeddings, never tuned to the landmarks, tell photos of no landmark apart
#: best; the fine-tuned ones and the probabilities, unknown landmarks.
DEFAULT_SCORE = "msp+knn+imagenet_knn"

#: The default for a model without ImageNet embeddings (the network trained from scratch, a
#: frozen backbone with a head): the best of the scores it has on the same photos.
SCORE_WITHOUT_IMAGENET = "msp+knn"

#: The added landmarks may take at most this share of the validation photos of the trained
#: landmarks (:func:`added_margin`).
TAKE_AT_MOST = 0.01

#: How fast the odds of an added landmark grow with its claim (:func:`recognise`): a claim
#: 1/12 above the margin multiplies them by e; the lower, the more an unsure network yields.
#: Chosen on landmarks44's validation photos (``benchmarks/beyond.py``): of 5, 10, 12, 15, 20,
#: 25, 50 and 100, the highest top-1 on the added landmarks (76.3%; 50: 68.8%) among those
#: with which the trained landmarks lost less than 1 point (0.9; 10 lost 1.0).
SHARPNESS = 12.0


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


# --------------------------------------------------------------------- added landmarks


def _check_new(memory: Memory, name: str, latitude, longitude) -> str:
    """The name, stripped; raises ValueError for a bad name or bad coordinates."""
    name = name.strip()
    if not name or "\n" in name:
        raise ValueError(f"a landmark needs a name on one line, got {name!r}")
    if "|" in name or "/" in name:
        raise ValueError(f"a landmark's name cannot hold '|' or '/' (they separate the levels "
                         f"of photo managers' keyword hierarchies), got {name!r}")
    taken = {known.casefold(): known for known in memory.names}
    for trained in memory.class_names:  # and the names tag writes for them (the place table)
        place = place_for(trained)
        if place is not None:
            taken.setdefault(place.name.casefold(), place.name)
    if name.casefold() in taken:
        raise ValueError(f"the model already knows a landmark called {taken[name.casefold()]!r};"
                         " choose another name (or remove the added one first)")
    if (latitude is None) != (longitude is None):
        raise ValueError("give both the latitude and the longitude, or neither")
    if latitude is not None:
        for value, limit, what in ((latitude, 90, "latitude"), (longitude, 180, "longitude")):
            if not (math.isfinite(value) and -limit <= value <= limit):
                raise ValueError(f"the {what} must be between -{limit} and {limit} degrees, "
                                 f"got {value}")
    return name


def add_landmark(memory: Memory, name: str, answers: Iterable, where: str = "",
                 latitude: float | None = None, longitude: float | None = None,
                 mirrored: Iterable | None = None) -> Memory:
    """The memory with one more landmark, recognised from now on without retraining.

    The photos' embeddings join the memory (they become evidence for :func:`nearest`), and
    the normalised mean of their centred embeddings (:meth:`Memory.centred`; with their
    mirror images' too, when given) becomes the landmark's prototype (:func:`recognise`):
    a class mean in the centred space ("SimpleShot", Wang et al., 2019). On landmarks44's
    validation photos, centring and the mirror images raised the added landmarks' top-1
    from 65.0% to 67.7% (``benchmarks/beyond.py`` compares the rules). Nothing is written:
    write the result with :func:`write_memory`, so on any error the file stays as it was.

    Example::

        answers = deployment.classify_photos(photos, predictor)
        mirrored = deployment.classify_photos(photos, predictor, mirror=True)
        write_memory(add_landmark(memory, "St Mary's", answers, "Ely, United Kingdom",
                                  mirrored=mirrored), path)

    Args:
        memory: the model's memory.
        name: the display name; not one the model already knows (case ignored).
        answers: :class:`~landmarklib.deployment.Answer` objects of at least
            :data:`MIN_PHOTOS` different photos of the landmark.
        where: ``"City, Country"`` (or only one of them).
        latitude, longitude: degrees, WGS84 (both or neither).
        mirrored: the answers of the same photos' horizontal mirror images
            (``classify_photos(..., mirror=True)``), in the same order; or ``None``.

    Returns:
        A new :class:`Memory`; ``memory`` is not changed.

    Raises:
        ValueError: an empty or duplicate name, coordinates out of range or only one of
            them, photos that could not be used (each named), or fewer than
            :data:`MIN_PHOTOS` different usable photos.
    """
    name = _check_new(memory, name, latitude, longitude)
    answers = list(answers)
    paths, rows, errors = embeddings_of(answers)
    if errors:
        raise ValueError("these photos could not be used, so nothing was added:\n  "
                         + "\n  ".join(str(error) for error in errors))
    first = {str(Path(path).resolve()): row for path, row in zip(paths, rows)}
    if len(first) < MIN_PHOTOS:
        raise ValueError(f"a landmark needs at least {MIN_PHOTOS} different photos, got "
                         f"{len(first)}")
    rows = np.stack(list(first.values()))
    views = rows if mirrored is None else np.concatenate([rows, _mirrors(mirrored, paths)])
    prototype = memory.centred(views).mean(axis=0)
    city, _, country = where.rpartition(",") if "," in where else (where, "", "")
    landmark = Landmark(name, list(first), (prototype / np.linalg.norm(prototype)).astype(
        np.float32), city.strip(), country.strip(), latitude, longitude)
    label = len(memory.names)
    memory = replace(memory, embeddings=np.concatenate([memory.embeddings,
                                                        rows.astype(np.float16)]),
                     labels=np.concatenate([memory.labels, np.full(len(rows), label)]),
                     paths=[*memory.paths, *first], landmarks=[*memory.landmarks, landmark])
    if len(memory.imagenet):  # one row per different photo, as for the embeddings
        imagenet = {str(Path(path).resolve()): row
                    for path, row in zip(paths, embeddings_of(answers, "imagenet")[1])}
        if len(next(iter(imagenet.values()))) != memory.imagenet.shape[1]:
            raise ValueError("the photos' answers lack the ImageNet embeddings of the memory's "
                             "model: classify them with the model the memory belongs to")
        memory = replace(memory, imagenet=np.concatenate(
            [memory.imagenet, np.stack(list(imagenet.values())).astype(np.float16)]))
    return replace(memory, margin=added_margin(memory))


def _mirrors(mirrored: Iterable, paths: list[str]) -> np.ndarray:
    """float32 ``(M, F)``: the embeddings of the mirror images (one per different photo)."""
    mirror_paths, rows, errors = embeddings_of(mirrored)
    if errors or mirror_paths != paths:
        raise ValueError("the mirror images' answers must be those of the same photos, in "
                         "the same order")
    first = {str(Path(path).resolve()): row for path, row in zip(mirror_paths, rows)}
    return np.stack(list(first.values()))


def remove_landmark(memory: Memory, name: str) -> Memory:
    """The memory without the added landmark ``name`` (case ignored), its photos and their
    embeddings; ``memory`` is not changed.

    Raises:
        ValueError: ``name`` is a class the network was trained on, or no added landmark.
    """
    added = [landmark.name.casefold() for landmark in memory.landmarks]
    if name.strip().casefold() not in added:
        trained = name.strip().casefold() in {n.casefold() for n in memory.class_names}
        raise ValueError(
            f"{name!r} is a class the network was trained on; only added landmarks can be "
            "removed" if trained else
            f"no added landmark is called {name!r}; added: "
            f"{', '.join(m.name for m in memory.landmarks) or 'none'}")
    index = added.index(name.strip().casefold())
    label = len(memory.class_names) + index
    keep = memory.labels != label
    labels = memory.labels[keep]
    memory = replace(memory, embeddings=memory.embeddings[keep],
                     imagenet=memory.imagenet[keep] if len(memory.imagenet) else memory.imagenet,
                     labels=np.where(labels > label, labels - 1, labels),
                     paths=[p for p, kept in zip(memory.paths, keep) if kept],
                     landmarks=[m for i, m in enumerate(memory.landmarks) if i != index])
    return replace(memory, margin=added_margin(memory))


# -------------------------------------------------------------- answering with the memory


def added_margin(memory: Memory) -> float:
    """The margin by which an added landmark must beat the trained ones (:func:`recognise`).

    Chosen so that the added landmarks take at most :data:`TAKE_AT_MOST` of the validation
    photos (photos of the trained landmarks the network did not train on): on landmarks44 the
    trained classes then lost 0.9 point of validation and 1.2 of test accuracy
    (``benchmarks/beyond.py``).
    0 when there are no added landmarks or no validation photos.
    """
    if not memory.landmarks or not len(memory.valid_embeddings):
        return 0.0
    valid = memory.centred(memory.valid_embeddings)
    claim = _claims(memory, valid, valid @ memory.centred_embeddings.T,
                    np.asarray(memory.valid_confidence, np.float64))
    return float(np.quantile(claim.max(axis=1), 1 - TAKE_AT_MOST))


def _claims(memory: Memory, embeddings: np.ndarray, similarity: np.ndarray,
            confidence: np.ndarray) -> np.ndarray:
    """``(N, A)``: how strongly each added landmark claims each photo: the cosine similarity
    to its prototype, minus that to the most similar training photo of a trained class,
    minus ``log(top-1 probability) / SHARPNESS`` (an unsure network yields sooner); the
    embeddings and similarities centred (:meth:`Memory.centred`)."""
    trained = similarity[:, memory.labels < len(memory.class_names)].max(axis=1)
    return (embeddings @ memory.prototypes.T - trained[:, None]
            - np.log(np.maximum(confidence, 1e-12))[:, None] / SHARPNESS)


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
    means: ``benchmarks/beyond.py``). The trained
    classes share the rest in proportion to their calibrated probabilities.

    Args:
        memory: the model's memory.
        log_probs, embeddings: float ``(N, C)`` and ``(N, F)``, the deployment file's outputs.
        logits: float ``(N, C)``, needed for the scores ``"energy"`` and ``"max_logit"``.
        k: how many nearest photos.
        imagenet: float ``(N, F')``, the ImageNet embeddings (the deployment file's fourth
            output), needed for the scores of :data:`landmarklib.calibration.NEEDS_IMAGENET`.

    Returns:
        A :class:`Recognition`.
    """
    embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    probabilities = calibrate(np.atleast_2d(log_probs), memory.temperature)
    similarity = embeddings @ memory.embeddings.astype(np.float32).T
    extra = np.zeros((len(embeddings), 0))
    if memory.landmarks:
        centred = memory.centred(embeddings)
        claim = _claims(memory, centred, centred @ memory.centred_embeddings.T,
                        probabilities.max(axis=1))
        extra = np.clip(SHARPNESS * (claim - memory.margin), -60, 60)
        odds = np.exp(extra)
        probabilities = np.concatenate([probabilities, odds], axis=1) / (
            1 + odds.sum(axis=1, keepdims=True))
    if logits is not None:  # the added landmarks' logits: log-odds + logsumexp(logits)
        logits = np.atleast_2d(np.asarray(logits, np.float64))
        logits = np.concatenate([logits, extra + known_score("energy", logits=logits)[:, None]],
                                axis=1)
    neighbours, similarities = _top_k(similarity, k)
    imagenet_similarity = None
    if imagenet is not None and len(memory.imagenet):
        imagenet_similarity = (np.atleast_2d(np.asarray(imagenet, np.float32))
                               @ memory.imagenet.astype(np.float32).T).max(axis=1)
    score = known_score(memory.score, probabilities.astype(np.float32), logits,
                        similarities[:, 0], memory.references(), imagenet_similarity)
    known = score >= memory.threshold if memory.threshold is not None else \
        np.ones(len(score), bool)
    return Recognition(probabilities.astype(np.float32), score, known, neighbours,
                       similarities)


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
                         "deployment file of a fine-tuned model has; choose another score")
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
                     else imagenet.astype(np.float16))
    memory = replace(memory, margin=added_margin(memory))
    threshold = choose_threshold(recognise(memory, log_probs, embeddings, logits, 1,
                                           imagenet).score, accept)
    return replace(memory, threshold=threshold), {
        "ece_before": calibration_error(np.exp(log_probs), labels),
        "ece_after": calibration_error(probabilities, labels),
        "temperature": temperature, "threshold": threshold}

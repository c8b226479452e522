"""Landmarks of your own, added from a few photos without retraining the network.

A landmark is added to a model's memory (:class:`landmarklib.memory.Memory`, the file beside
its deployment file): its photos' embeddings join the memory, and their mean direction, after
centring, becomes its **prototype** (:func:`add_landmark`). When the model answers
(:func:`landmarklib.embeddings.recognise`), a photo goes to an added landmark when it is
closer to the prototype than to any training photo of a trained landmark by a margin
(:func:`claims`, :func:`added_margin`), chosen on the validation split so that the added
landmarks take at most :data:`TAKE_AT_MOST` of the photos of the trained ones, and only when
its own photos vouch for the photo (:func:`vouched`): a photo of no landmark is far from every
training photo, so it is "closer to the new landmark" too. :func:`remove_landmark` takes one
away. NumPy only.

Taught in notebooks/05_beyond_the_landmarks.ipynb, 'Adding a landmark from five photos'; from
the command line: ``landmarklib add-landmark``, ``remove-landmark``, ``landmarks``.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from landmarklib.memory import Landmark, Memory, embeddings_of, nearest_similarity
from landmarklib.places import name_key, place_for

__all__ = ["MIN_PHOTOS", "TAKE_AT_MOST", "SHARPNESS", "VOUCH_QUANTILE", "CONTROL", "NameTakenError",
           "add_landmark", "remove_landmark", "added_margin", "claims", "vouched"]

#: The fewest photos a landmark can be added from.
MIN_PHOTOS = 3

#: The added landmarks may take at most this share of the validation photos of the trained
#: landmarks (:func:`added_margin`).
TAKE_AT_MOST = 0.01

#: How fast the odds of an added landmark grow with its claim
#: (:func:`~landmarklib.embeddings.recognise`): a claim 1/12 above the margin multiplies them
#: by e; the lower, the more an unsure network yields.
#: Chosen on landmarks44's validation photos (``benchmarks/beyond.py``, before the vouching):
#: of 5, 10, 12, 15, 20, 25, 50 and 100, the highest top-1 on the added landmarks (76.3%;
#: 50: 68.8%) among those with which the trained landmarks lost less than 1 point (0.9).
SHARPNESS = 12.0

#: An added landmark's own photos vouch for a photo (:func:`vouched`) when it is at least as
#: similar to the nearest of them as all but this share of the validation photos are to the
#: nearest of as many photos of their own landmark. Chosen on validation photos only
#: (``benchmarks/beyond.py``, landmarks44 and 500 caltech101 training photos): without it 79%
#: of the caltech101 photos were answered as an added landmark; with 0.01, 2.8%, the added
#: landmarks' top-1 76.3% -> 74.2%; beyond 0.01 each point of them kept off cost more than a
#: point of top-1 (0.02: 1.7%, 72.1%).
VOUCH_QUANTILE = 0.01


def _trained_names(memory: Memory) -> dict[str, str]:
    """``{name_key: name}`` of the classes the network was trained on, of the names tag
    writes for them and of their folders (the place table's)."""
    names = {name_key(trained): trained for trained in memory.class_names}
    for trained in memory.class_names:
        place = place_for(trained)
        if place is not None:
            names.setdefault(name_key(place.name), place.name)
            names.setdefault(name_key(place.folder), trained)
    return names


#: Unicode categories a landmark's name may not hold: control characters (a tab, a bell) and
#: line and paragraph separators (a name is one line of a photo manager's keyword list).
CONTROL = ("Cc", "Zl", "Zp")


class NameTakenError(ValueError):
    """The model already knows a landmark by that name (:func:`add_landmark`)."""


def _check_new(memory: Memory, name: str, latitude, longitude) -> str:
    """The name, stripped and in Unicode NFC; raises ValueError for a bad name or bad
    coordinates. Names compare as :func:`~landmarklib.places.name_key` does."""
    name = unicodedata.normalize("NFC", name.strip())
    if not name_key(name) or any(unicodedata.category(c) in CONTROL for c in name):
        raise ValueError(f"a landmark needs a name on one line, without tabs or other control "
                         f"characters, got {name!r}")
    if "|" in name or "/" in name:
        raise ValueError(f"a landmark's name cannot hold '|' or '/' (they separate the levels "
                         f"of photo managers' keyword hierarchies), got {name!r}")
    taken = _trained_names(memory) | {name_key(known): known for known in memory.names}
    if name_key(name) in taken:
        raise NameTakenError(f"the model already knows a landmark called "
                             f"{taken[name_key(name)]!r}; choose another name (or remove the "
                             "added one first)")
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

    The photos' embeddings (and ImageNet embeddings, when the memory has them) join the
    memory: they become evidence (:func:`landmarklib.embeddings.nearest`). The normalised
    mean of their centred embeddings (:meth:`Memory.centred`; with their mirror images' too,
    when given) becomes the landmark's prototype (:func:`claims`): a class mean in the
    centred space ("SimpleShot", Wang et al., 2019). On landmarks44's validation photos,
    centring and the mirror images raised the added landmarks' top-1 from 65.0% to 67.7%
    (``benchmarks/beyond.py`` compares the rules). Nothing is written: write the result with
    :func:`landmarklib.memory.write_memory`, so on any error the file stays as it was.

    Example::

        answers = deployment.classify_photos(photos, predictor)
        mirrored = deployment.classify_photos(photos, predictor, mirror=True)
        write_memory(add_landmark(memory, "St Mary's", answers, "Ely, United Kingdom",
                                  mirrored=mirrored), path)

    Args:
        memory: the model's memory.
        name: the display name, stored in Unicode NFC; not one the model already knows
            (compared as :func:`~landmarklib.places.name_key` does).
        answers: :class:`~landmarklib.deployment.Answer` objects of at least
            :data:`MIN_PHOTOS` different photos of the landmark.
        where: ``"City, Country"``: the country after the last comma, the city before it
            (``", Country"``: a country alone; no comma: a city alone).
        latitude, longitude: degrees, WGS84 (both or neither).
        mirrored: the answers of the same photos' horizontal mirror images
            (``classify_photos(..., mirror=True)``), in the same order; or ``None``.

    Returns:
        A new :class:`Memory`; ``memory`` is not changed.

    Raises:
        NameTakenError: a name the model already knows (a ValueError).
        ValueError: an empty name or one with control characters, bad coordinates (out of
            range, or one alone), unusable photos (each named), fewer than :data:`MIN_PHOTOS`
            different usable photos, or answers of another model (no ImageNet embeddings).
    """
    name = _check_new(memory, name, latitude, longitude)
    answers = list(answers)
    first = _per_photo(answers)
    if len(first) < MIN_PHOTOS:
        raise ValueError(f"a landmark needs at least {MIN_PHOTOS} different photos, got "
                         f"{len(first)}")
    rows = np.stack(list(first.values()))
    city, _, country = where.rpartition(",") if "," in where else (where, "", "")
    landmark = Landmark(name, list(first), _prototype(memory, rows, answers, mirrored),
                        city.strip(), country.strip(), latitude, longitude)
    label = len(memory.names)
    memory = replace(memory, embeddings=np.concatenate([memory.embeddings,
                                                        rows.astype(np.float16)]),
                     labels=np.concatenate([memory.labels, np.full(len(rows), label)]),
                     paths=[*memory.paths, *first], landmarks=[*memory.landmarks, landmark])
    memory = _with_imagenet(memory, answers)
    return replace(memory, margin=added_margin(memory))


def _with_imagenet(memory: Memory, answers: list) -> Memory:
    """``memory`` with the ImageNet embeddings of the photos just added (one row per
    different photo, as for the embeddings), when it keeps ImageNet embeddings."""
    if not len(memory.imagenet):
        return memory
    imagenet = np.stack(list(_per_photo(answers, "imagenet").values()))
    if imagenet.shape[1] != memory.imagenet.shape[1]:
        raise ValueError("the photos' answers lack the ImageNet embeddings of the memory's "
                         "model: classify them with the model the memory belongs to")
    return replace(memory, imagenet=np.concatenate([memory.imagenet,
                                                    imagenet.astype(np.float16)]))


def _per_photo(answers: list, field: str = "embedding") -> dict[str, np.ndarray]:
    """``{resolved path: float32 row}`` of the answers' ``field``, one per different photo.

    Raises:
        ValueError: photos that could not be used (each named).
    """
    paths, rows, errors = embeddings_of(answers, field)
    if errors:
        raise ValueError("these photos could not be used, so nothing was added:\n  "
                         + "\n  ".join(str(error) for error in errors))
    return {str(Path(path).resolve()): row for path, row in zip(paths, rows)}


def _prototype(memory: Memory, rows: np.ndarray, answers: list,
               mirrored: Iterable | None) -> np.ndarray:
    """float32 ``(F,)``: the normalised mean of the centred embeddings ``rows`` ``(M, F)`` of
    the photos of ``answers`` and, when given, of their mirror images (``mirrored``: answers
    of the same photos, in the same order; else a ValueError)."""
    if mirrored is not None:
        mirrored = list(mirrored)
        if [str(a.path) for a in mirrored] != [str(a.path) for a in answers]:
            raise ValueError("the mirror images' answers must be those of the same photos, in "
                             "the same order")
        rows = np.concatenate([rows, np.stack(list(_per_photo(mirrored).values()))])
    mean = memory.centred(rows).mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def remove_landmark(memory: Memory, name: str) -> Memory:
    """The memory without the added landmark ``name`` (compared as
    :func:`~landmarklib.places.name_key` does: case and Unicode normalisation ignored; of two
    such, the one spelt exactly as ``name``), its photos and their embeddings; ``memory`` is
    not changed.

    Raises:
        ValueError: ``name`` is a class the network was trained on, or no added landmark.
    """
    key, added = name_key(name), [name_key(landmark.name) for landmark in memory.landmarks]
    if key not in added:
        trained = key in _trained_names(memory)
        raise ValueError(
            f"{name!r} is a class the network was trained on; only added landmarks can be "
            "removed" if trained else
            f"no added landmark is called {name!r}; added: "
            f"{', '.join(m.name for m in memory.landmarks) or 'none'}")
    names, typed = [m.name for m in memory.landmarks], name.strip()
    exact = [names.index(n) for n in (typed, unicodedata.normalize("NFC", typed)) if n in names]
    index = exact[0] if exact else added.index(key)  # the spelling typed first
    label = len(memory.class_names) + index
    keep = memory.labels != label
    labels = memory.labels[keep]
    memory = replace(memory, embeddings=memory.embeddings[keep],
                     imagenet=memory.imagenet[keep] if len(memory.imagenet) else memory.imagenet,
                     labels=np.where(labels > label, labels - 1, labels),
                     paths=[p for p, kept in zip(memory.paths, keep) if kept],
                     landmarks=[m for i, m in enumerate(memory.landmarks) if i != index])
    return replace(memory, margin=added_margin(memory))


def added_margin(memory: Memory) -> float:
    """The margin by which an added landmark must beat the trained ones
    (:func:`landmarklib.embeddings.recognise`).

    Chosen so that the added landmarks take at most :data:`TAKE_AT_MOST` of the validation
    photos (photos of the trained landmarks the network did not train on): on landmarks44 the
    trained classes then lost 0.9 point of validation and 1.0 of test accuracy, with the
    vouching of :func:`vouched` (``benchmarks/beyond.py``).
    0 when there are no added landmarks or no validation photos.
    """
    if not memory.landmarks or not len(memory.valid_embeddings):
        return 0.0
    valid = memory.centred(memory.valid_embeddings)
    claim = claims(memory, valid, valid @ memory.centred_embeddings.T,
                   np.asarray(memory.valid_confidence, np.float64))
    return float(np.quantile(claim.max(axis=1), 1 - TAKE_AT_MOST))


def claims(memory: Memory, embeddings: np.ndarray, similarity: np.ndarray,
           confidence: np.ndarray) -> np.ndarray:
    """``(N, A)``: how strongly each added landmark claims each photo: the cosine similarity
    to its prototype, minus that to the most similar training photo of a trained class,
    minus ``log(top-1 probability) / SHARPNESS`` (an unsure network yields sooner); the
    embeddings and similarities centred (:meth:`Memory.centred`)."""
    trained = similarity[:, memory.labels < len(memory.class_names)].max(axis=1)
    return (embeddings @ memory.prototypes.T - trained[:, None]
            - np.log(np.maximum(confidence, 1e-12))[:, None] / SHARPNESS)


def vouched(memory: Memory, embeddings: np.ndarray, imagenet: np.ndarray | None = None
            ) -> np.ndarray:
    """bool ``(N, A)``: whether each added landmark's own photos vouch for each photo.

    A claim (:func:`claims`) only says that a photo is nearer to an added landmark than to
    the trained ones; a photo of no landmark at all is far from everything, and nearest to
    whichever landmark is new. So an added landmark may only take a photo that is at least as
    similar to the nearest of its own photos as all but :data:`VOUCH_QUANTILE` of the
    validation photos are to the nearest of as many photos of their own landmark
    (:meth:`Memory.references`). Compared in the ImageNet embeddings when the memory and the
    caller have them (``imagenet`` ``(N, F')``; they were never tuned to tell landmarks apart,
    so they still tell a face from a volcano), else in the embeddings ``(N, F)``. All true
    without the validation photos' classes.
    """
    use = imagenet is not None and len(memory.imagenet) > 0
    rows, remembered, key = (imagenet, memory.imagenet, "imagenet_knn") if use else (
        embeddings, memory.embeddings, "knn")
    rows = np.atleast_2d(np.asarray(rows, np.float32))
    result = np.ones((len(rows), len(memory.landmarks)), bool)
    for j, landmark in enumerate(memory.landmarks if len(memory.valid_labels) else []):
        own = remembered[memory.labels == len(memory.class_names) + j]
        floor = np.quantile(memory.references(len(landmark.photos))[key], VOUCH_QUANTILE)
        result[:, j] = nearest_similarity(rows, own) >= floor
    return result

"""A model's memory: the file beside a deployment file that holds the embeddings of its
training photos, the landmarks added to it, and how far to trust its answers.

A deployment file (:mod:`landmarklib.export`) maps a photo to class probabilities and to an
**embedding**: the features before the classifier, L2-normalised, so that the dot product of
two embeddings is their cosine similarity (1: the same direction; about 0: unrelated). Beside
the deployment file, its memory (``landmark_classifier.memory.npz`` beside
``landmark_classifier.onnx``, :func:`memory_path`) keeps:

* the embeddings of the training photos (float16), their files (relative to the dataset
  folder) and classes (:func:`build_memory`), and their ImageNet embeddings when the
  deployment file has them (a fine-tuned model's frozen trunk, :mod:`landmarklib.export`);
* the landmarks added to the model (:class:`Landmark`; see
  :func:`landmarklib.adding.add_landmark`): a name, where it is, the embeddings of a few
  photos of it and their mean direction, the *prototype*;
* the **temperature** that calibrates the probabilities, the **"I don't know" threshold**
  with the score it applies to and the goal it was chosen for, and how added landmarks
  compete with the trained classes (:func:`landmarklib.embeddings.fit_calibration`).

The file is a NumPy ``.npz`` archive (arrays, plus one JSON text for the rest), written
atomically and read with ``allow_pickle=False`` (:func:`write_memory`, :func:`read_memory`);
it names the deployment file it belongs to (:attr:`Memory.model_id`), and a memory of another
model is refused. NumPy only: nothing here imports torch.

Taught in notebooks/05_beyond_the_landmarks.ipynb.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from landmarklib.files import atomic_path
from landmarklib.places import Place

__all__ = ["MEMORY_FORMAT", "Landmark", "Neighbour", "Memory", "memory_path", "build_memory",
           "write_memory", "read_memory", "added_landmarks", "embeddings_of", "nearest_similarity"]

MEMORY_FORMAT = "landmarklib-memory/3"


@dataclass
class Landmark:
    """A landmark added to a model (:func:`landmarklib.adding.add_landmark`).

    Attributes:
        name: its display name, unique among the model's classes.
        photos: the files it was added from (absolute paths).
        prototype: float32 ``(F,)``, the normalised mean of the photos' embeddings.
        city, country: where it is (may be empty).
        latitude, longitude: degrees (WGS84), or ``None``.
    """

    name: str
    photos: list[str]
    prototype: np.ndarray
    city: str = ""
    country: str = ""
    latitude: float | None = None
    longitude: float | None = None

    @property
    def where(self) -> str:
        """``"City, Country"`` (as much as is known)."""
        return ", ".join(part for part in (self.city, self.country) if part)

    @property
    def place(self) -> Place | None:
        """Where it is (without coordinates if only its city or country is known), or None."""
        if self.latitude is None and not self.where:
            return None
        return Place(self.name, self.name, self.city, self.country, self.latitude,
                     self.longitude)


@dataclass
class Neighbour:
    """A remembered photo similar to a new one: the evidence shown next to an answer.

    Attributes:
        path: the photo file (absolute where the memory knows the dataset folder).
        name: its class (a trained or an added landmark).
        similarity: the cosine similarity of the two embeddings (1: the same direction).
    """

    path: Path
    name: str
    similarity: float


@dataclass
class Memory:
    """What a deployment file remembers (see the module's documentation).

    Attributes:
        embeddings: float16 ``(N, F)``, unit rows: the training photos', then the added
            landmarks' photos.
        labels: int64 ``(N,)``: class ids; added landmark ``j`` has id ``len(class_names) + j``.
        paths: ``N`` files: training photos relative to the dataset folder, added photos
            absolute.
        class_names: the classes the network was trained on, in class-id order.
        model_id: :attr:`landmarklib.deployment.Predictor.model_id` of the deployment file.
        temperature: divides the log-probabilities (:func:`landmarklib.calibration.calibrate`).
        score, threshold, accept: the "I don't know" rule: a photo whose score (a name from
            :data:`landmarklib.calibration.SCORES`) is below ``threshold`` is not accepted as a
            known landmark; ``threshold`` was chosen to accept the share ``accept`` of the
            validation photos (``None``: not fitted, every photo accepted).
        valid_embeddings, valid_confidence: float16 ``(V, F)`` and float32 ``(V,)``, the
            validation photos' embeddings and calibrated top-1 probabilities: how far the
            added landmarks may reach (:func:`landmarklib.adding.added_margin`).
        margin: the margin of :func:`landmarklib.embeddings.recognise` for the landmarks
            added (0 before any).
        landmarks: the added landmarks, in class-id order.
        root: the dataset folder the training photos' paths are relative to ("" if unknown).
        centre: float32 ``(F,)``, the mean embedding of the training photos: embeddings are
            compared after subtracting it and normalising again (:meth:`centred`).
        valid_labels: int64 ``(V,)``: the validation photos' classes.
        imagenet, valid_imagenet: float16 ``(N, F')`` and ``(V, F')``: the ImageNet
            embeddings of the remembered and of the validation photos, for the score
            ``"imagenet_knn"``; ``(0, 0)`` for a model without them.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    paths: list[str]
    class_names: list[str]
    model_id: str
    temperature: float = 1.0
    score: str = "knn"
    threshold: float | None = None
    accept: float | None = None
    valid_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))
    valid_confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    margin: float = 0.0
    landmarks: list[Landmark] = field(default_factory=list)
    root: str = ""
    centre: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    imagenet: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))
    valid_imagenet: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))
    valid_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def centred(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings ``(N, F)`` (or ``(F,)``) minus :attr:`centre`, L2-normalised again:
        float32 ``(N, F)`` unit rows ("CL2N", Wang et al., "SimpleShot: Revisiting
        Nearest-Neighbor Classification for Few-Shot Learning", 2019). The fine-tuned
        embeddings of all landmark photos share a common direction; without it, the cosine
        similarities of different landmarks are all high and few photos separate them less
        well (``benchmarks/beyond.py``). Without a centre: only normalised."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float32))
        rows = rows - self.centre.astype(np.float32) if len(self.centre) else rows
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    @cached_property
    def centred_embeddings(self) -> np.ndarray:
        """float32 ``(N, F)``: :attr:`embeddings` through :meth:`centred` (computed once)."""
        return self.centred(self.embeddings)

    def references(self, photos: int | None = None) -> dict[str, np.ndarray]:
        """The validation photos' scores that combined scores rank a photo's among
        (:func:`landmarklib.calibration.combine_scores`), float ``(V,)`` each, computed once:
        ``"msp"``, ``"knn"`` (the cosine similarity to the nearest remembered photo) and
        ``"imagenet_knn"`` (the same with the ImageNet embeddings; empty without them).

        Args:
            photos: for photos answered as a landmark added from this many photos: the
                similarities to the nearest of ``photos`` training photos of each validation
                photo's own landmark (drawn with ``numpy.random.default_rng(0)``).
        """
        key = photos if len(self.valid_labels) else None
        if key not in self._references:
            self._references[key] = {"msp": self.valid_confidence} | {
                name: nearest_similarity(valid, remembered, key, self.labels, self.valid_labels)
                for name, valid, remembered in (
                    ("knn", self.valid_embeddings, self.embeddings),
                    ("imagenet_knn", self.valid_imagenet, self.imagenet))}
        return self._references[key]

    @cached_property
    def _references(self) -> dict[int | None, dict[str, np.ndarray]]:
        return {}

    def neighbours(self, indices: np.ndarray, similarities: np.ndarray) -> list[Neighbour]:
        """The remembered photos at ``indices`` (int ``(k,)``, rows of :attr:`embeddings`, e.g.
        one row of :func:`landmarklib.embeddings.nearest`'s answer) as :class:`Neighbour`
        objects, with ``similarities`` (float ``(k,)``)."""
        names = self.names
        return [Neighbour(Path(self.root, self.paths[i]) if self.root else Path(self.paths[i]),
                          names[int(self.labels[i])], float(s))
                for i, s in zip(indices, similarities)]

    @property
    def names(self) -> list[str]:
        """Every class a prediction can answer: the trained ones, then the added ones."""
        return [*self.class_names, *(landmark.name for landmark in self.landmarks)]

    @property
    def prototypes(self) -> np.ndarray:
        """float32 ``(A, F)``: the added landmarks' prototypes, in class-id order."""
        return np.stack([m.prototype for m in self.landmarks]).astype(np.float32) \
            if self.landmarks else np.zeros((0, self.embeddings.shape[1]), np.float32)


def memory_path(model: str | os.PathLike) -> Path:
    """The memory file of a deployment file: ``landmark_classifier.onnx`` ->
    ``landmark_classifier.memory.npz`` (the same folder)."""
    model = Path(model)
    return model.with_name(f"{model.stem}.memory.npz")


# ------------------------------------------------------------------------ the file


def write_memory(memory: Memory, path: str | os.PathLike) -> Path:
    """Write ``memory`` to ``path`` atomically (:func:`landmarklib.files.atomic_path`) as a
    NumPy ``.npz`` archive of plain arrays (no pickled objects); returns the path."""
    meta = {"format": MEMORY_FORMAT, "class_names": memory.class_names,
            "model_id": memory.model_id, "temperature": memory.temperature,
            "score": memory.score, "threshold": memory.threshold, "accept": memory.accept,
            "margin": memory.margin, "root": memory.root,
            "landmarks": [{"name": m.name, "photos": m.photos, "city": m.city,
                           "country": m.country, "latitude": m.latitude,
                           "longitude": m.longitude} for m in memory.landmarks]}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, embeddings=memory.embeddings.astype(np.float16),
                 labels=memory.labels.astype(np.int64), paths=np.array(memory.paths, dtype=str),
                 prototypes=memory.prototypes,
                 valid_embeddings=memory.valid_embeddings.astype(np.float16),
                 valid_confidence=memory.valid_confidence.astype(np.float32),
                 centre=memory.centre.astype(np.float32),
                 imagenet=memory.imagenet.astype(np.float16),
                 valid_imagenet=memory.valid_imagenet.astype(np.float16),
                 valid_labels=memory.valid_labels.astype(np.int64),
                 meta=np.array(json.dumps(meta, ensure_ascii=False)))
    return Path(path)


def read_memory(path: str | os.PathLike, model_id: str | None = None) -> Memory:
    """Read a file written by :func:`write_memory` (``allow_pickle=False``: it runs no code).

    Args:
        path: the memory file.
        model_id: the deployment file's :attr:`~landmarklib.deployment.Predictor.model_id`;
            given, a memory of another model is refused.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a memory file, a damaged one, or one of another model (the message
            says how to make the right one: ``landmarklib index``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No memory file at {path}; make one with `landmarklib index`")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays["meta"]))
        if str(meta.get("format", "")).startswith("landmarklib-memory/") and \
                meta["format"] != MEMORY_FORMAT:
            raise _OldFormat(meta["format"])
        if meta.get("format") != MEMORY_FORMAT:
            raise KeyError("format")
        landmarks = [Landmark(prototype=prototype, **entry)
                     for entry, prototype in zip(meta["landmarks"], arrays["prototypes"])]
        memory = Memory(arrays["embeddings"], arrays["labels"], arrays["paths"].tolist(),
                        meta["class_names"], meta["model_id"], meta["temperature"],
                        meta["score"], meta["threshold"], meta["accept"],
                        arrays["valid_embeddings"], arrays["valid_confidence"], meta["margin"],
                        landmarks, meta.get("root", ""), arrays["centre"],
                        arrays["imagenet"], arrays["valid_imagenet"], arrays["valid_labels"])
        if not len(memory.labels) == len(memory.embeddings) == len(memory.paths) or \
                len(memory.imagenet) not in (0, len(memory.labels)):
            raise ValueError("arrays of different lengths")
    except _OldFormat as old:
        raise ValueError(f"{path}: a memory file of an older landmarklib ({old}; this one reads "
                         f"{MEMORY_FORMAT}); make it again with `landmarklib index` (it keeps "
                         "the landmarks added to it)") from None
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a landmarklib memory file ({MEMORY_FORMAT}), or a "
                         f"damaged one ({type(error).__name__}); make it again with "
                         "`landmarklib index`") from None
    if model_id is not None and _content(memory.model_id) != _content(model_id):
        raise ValueError(f"{path} belongs to the model {memory.model_id}, not to {model_id}: "
                         "the model was retrained or exported again; make its memory with "
                         "`landmarklib index` (a landmark added to it stays)")
    return memory


def _content(model_id: str) -> str:
    """The content hash of a model id (``"<name>@sha256:<hex>"``): renamed, the same model."""
    return model_id.rpartition("@")[2]


def added_landmarks(path: str | os.PathLike) -> list[Landmark]:
    """The landmarks added to a memory file of this or an older format (names, photos and
    places; the prototypes left empty: embed the photos again), for ``landmarklib index``.

    Raises:
        ValueError: not a readable landmarklib memory file.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
        if not str(meta.get("format", "")).startswith("landmarklib-memory/"):
            raise KeyError("format")
        return [Landmark(prototype=np.zeros(0, np.float32), **entry)
                for entry in meta["landmarks"]]
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a landmarklib memory file ({type(error).__name__})") \
            from None


def nearest_similarity(queries: np.ndarray, rows: np.ndarray, photos: int | None = None,
                       labels=None, query_labels=None) -> np.ndarray:
    """float64 ``(Q,)``: each query's cosine similarity to the most similar of ``rows`` (unit
    rows ``(Q, F)`` and ``(R, F)``; empty without queries or rows); with ``photos``, to the most
    similar of ``photos`` rows of its own label (``labels`` ``(R,)``, ``query_labels``
    ``(Q,)``), drawn with ``default_rng(0)`` (the same draws for the same labels)."""
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    if not queries.size or not len(rows):
        return np.zeros(0)
    if photos is None:
        return (queries @ np.asarray(rows, np.float32).T).max(axis=1).astype(np.float64)
    rng, nearest = np.random.default_rng(0), np.zeros(len(queries))
    for i, label in enumerate(query_labels):
        own = np.flatnonzero(labels == label)
        drawn = rows[rng.choice(own, min(photos, len(own)), replace=False)]
        nearest[i] = (drawn.astype(np.float32) @ queries[i]).max()
    return nearest


class _OldFormat(Exception):
    """A memory file written by another version of :func:`write_memory`."""


# --------------------------------------------------------------- building and searching


def embeddings_of(answers: Iterable, field: str = "embedding"
                  ) -> tuple[list[str], np.ndarray, list]:
    """``(paths, float32 (N, F) embeddings, errors)`` of :class:`~landmarklib.deployment.Answer`
    objects (``field="imagenet"``: their ImageNet embeddings, ``(N, 0)`` if they have none);
    the photos that failed are only in ``errors``."""
    paths, rows, errors = [], [], []
    for answer in answers:
        if answer.error is not None:
            errors.append(answer.error)
        else:
            paths.append(str(answer.path))
            row = getattr(answer, field)
            rows.append(np.zeros(0) if row is None else np.asarray(row, dtype=np.float32))
    return paths, (np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
                   ), errors


def build_memory(answers: Iterable, labels: Sequence[int], class_names: Sequence[str],
                 model_id: str, root: str | os.PathLike | None = None) -> Memory:
    """The memory of a model's training photos (calibrate it with
    :func:`landmarklib.embeddings.fit_calibration`).

    Example::

        samples = training split of check_layout(root).files["train"]
        answers = deployment.classify_photos([p for p, _ in samples], predictor)
        memory = build_memory(answers, [c for _, c in samples], predictor.class_names,
                              predictor.model_id, root)

    Args:
        answers: :class:`~landmarklib.deployment.Answer` objects, one per photo, in the order of
            ``labels`` (a photo that failed is left out, with a warning naming it).
        labels: the photos' class ids.
        class_names, model_id: the deployment file's (:class:`~landmarklib.deployment.Predictor`).
        root: the dataset folder; paths are kept relative to it.

    Raises:
        ValueError: no photo could be used.
    """
    kept, usable = [], []
    for answer, label in zip(answers, labels):
        if answer.error is not None:
            warnings.warn(f"left out of the memory: {answer.error}", stacklevel=2)
            continue
        usable.append(answer)
        kept.append(int(label))
    if not usable:
        raise ValueError("no photo could be used to build the memory")
    paths, rows, _ = embeddings_of(usable)
    paths = [str(Path(path).relative_to(root)) if root else path for path in paths]
    imagenet = embeddings_of(usable, "imagenet")[1]
    return Memory(rows.astype(np.float16), np.array(kept, dtype=np.int64), paths,
                  list(class_names), model_id, root=str(Path(root).resolve()) if root else "",
                  centre=rows.mean(axis=0), imagenet=imagenet.astype(np.float16)
                  if imagenet.shape[1] else np.zeros((0, 0), np.float16))

"""The deployment file, loaded once and run by ONNX Runtime: photos in, probabilities and
embeddings out.

:class:`Predictor` reads a ``.onnx`` file written by :func:`landmarklib.export.export_onnx`
(the network, and in its metadata the classes and the preprocessing the model needs) into an
ONNX Runtime session, on a GPU with CUDA where onnxruntime can use one, else on the CPU.
:func:`get_predictor` loads a file once and keeps it. :func:`classify_photos` runs many photos,
streaming: decoding in background threads overlaps the network's batches.

Which file, in this order: the ``model`` argument; ``$LANDMARKLIB_MODEL``;
:func:`landmarklib.cache.default_deployment_path` (where notebook 03 and ``landmarklib train``
save).

When the model has a memory beside it (``MODEL.memory.npz``, :mod:`landmarklib.memory`, written
by ``landmarklib index`` and ``landmarklib train``), the predictor answers with it
(:func:`landmarklib.embeddings.recognise`): calibrated probabilities (its temperature), over
the trained and the added landmarks, the stored "I don't know" rule, and the most similar
remembered photos. Without one it answers as the network does.

Photos go through the project's one evaluation preprocessing
(:func:`landmarklib.preprocessing.preprocess`, PIL and NumPy), the same that measured the
model's accuracy during training. Nothing here imports torch: a new process that tags a photo
pays the import of onnxruntime, NumPy and PIL, not PyTorch's.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from landmarklib.cache import default_deployment_path
from landmarklib.embeddings import Recognition, recognise
from landmarklib.images import open_image, open_images
from landmarklib.memory import Memory, Neighbour, memory_path, read_memory
from landmarklib.places import Place, place_for
from landmarklib.preprocessing import preprocess

__all__ = ["MODEL_ENV", "DEPLOYMENT_FORMAT", "model_path", "Predictor", "ranked", "check_k",
           "Answer", "classify_photos", "answer_images", "get_predictor"]

MODEL_ENV = "LANDMARKLIB_MODEL"

#: The ``format`` a deployment file's metadata must have (:data:`landmarklib.export.ONNX_FORMAT`).
DEPLOYMENT_FORMAT = "landmarklib-onnx/1"


def model_path(model: str | os.PathLike | None = None) -> Path:
    """Resolve which deployment file to use (argument > ``$LANDMARKLIB_MODEL`` > default).

    Raises:
        FileNotFoundError: the file does not exist; the message says how to make one.
        ValueError: a training file (``.pt``) was given: the message says how to export it.
    """
    if model is not None:
        path = Path(model).expanduser()
    elif os.environ.get(MODEL_ENV):
        path = Path(os.environ[MODEL_ENV]).expanduser()
    else:
        path = default_deployment_path()
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder; give the model file inside it")
    if not path.is_file():
        raise FileNotFoundError(
            f"No trained model at {path}. Make one by running "
            "notebooks/03_transfer_learning.ipynb or `landmarklib train`, or point "
            f"${MODEL_ENV} (or the model argument) at a deployment file (.onnx).")
    if path.suffix.lower() in (".pt", ".pth"):
        raise ValueError(
            f"{path} is a training file (PyTorch); tagging uses its deployment file. Make it "
            f"with `landmarklib export {path}` (it writes {path.with_suffix('.onnx').name}) and "
            "give that file instead.")
    return path


# ------------------------------------------------------------------------------ prediction


class Predictor:
    """A deployment file loaded once into an ONNX Runtime session, ready to classify photos.

    Args:
        path: a ``.onnx`` file written by :func:`landmarklib.export.export_onnx`.
        threads: CPU threads for one photo's network (``None``: onnxruntime's default, one
            per core).
        memory: read the memory beside the file, if there is one (:attr:`memory`).

    Attributes:
        class_names, class_folders: display and folder names in class-id order, of every
            landmark it answers with: the trained ones, then the added ones (an added
            landmark's folder is its name).
        trained_names, trained_folders: those the network was trained on.
        memory: the :class:`landmarklib.memory.Memory` beside the file, or ``None`` (none, one
            of another model: a warning says so, or ``memory=False``).
        input_size, mean, std, resize_ratio: the preprocessing the model was trained with.
        precision, metrics: what it was trained in, and its measured test numbers.
        providers: the execution providers the session uses, e.g. ``["CPUExecutionProvider"]``.
        model_id: the file's name and content hash.

    Raises:
        ValueError: the file is not a readable ONNX model, or lacks landmarklib's metadata
            (the message says how to make a proper one).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 memory: bool = True):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()  # graph optimisations on, operators run in sequence
        # Threads that wait for work sleep instead of spinning: on a busy machine spinning
        # threads took the cores from each other and doubled a photo's time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ValueError(f"{self.path}: not a readable ONNX model file "
                             f"({str(error).splitlines()[0][:200]})") from None
        self.providers = self.session.get_providers()
        self._read_metadata(self.session.get_modelmeta().custom_metadata_map)
        #: Names the model by its content (``"<file name>@sha256:<12 hex digits>"``): a model
        #: retrained under the same name is a new model. XMP sidecars record it.
        self.model_id = f"{self.path.name}@sha256:{_sha256(self.path)[:12]}"
        self.memory: Memory | None = self._read_memory() if memory else None

    def _read_memory(self) -> Memory | None:
        path = memory_path(self.path)
        if not path.is_file():
            return None
        try:
            return read_memory(path, self.model_id)
        except ValueError as error:  # a stale memory must not stop tagging
            warnings.warn(f"{error}; answering without it", stacklevel=3)
            return None

    @property
    def class_names(self) -> list[str]:
        return self.memory.names if self.memory else self.trained_names

    @property
    def class_folders(self) -> list[str]:
        added = [m.name for m in self.memory.landmarks] if self.memory else []
        return [*self.trained_folders, *added]

    def _read_metadata(self, raw: dict[str, str]) -> None:
        try:
            meta = {key: json.loads(value) for key, value in raw.items()}
            if meta.get("format") != DEPLOYMENT_FORMAT:
                raise KeyError("format")
            self.trained_names, self.trained_folders = meta["class_names"], meta["class_folders"]
            self.input_size, self.resize_ratio = int(meta["input_size"]), meta["resize_ratio"]
            self.mean, self.std = tuple(meta["mean"]), tuple(meta["std"])
            self.precision, self.metrics = meta.get("precision"), meta.get("metrics", {})
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{self.path}: an ONNX file without landmarklib's metadata ({DEPLOYMENT_FORMAT}):"
                " make deployment files with `landmarklib export MODEL.pt` (or "
                "landmarklib.export.export_onnx), which records the classes and the "
                "preprocessing the model needs.") from None

    def inputs(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Photos as the network's input: float32 ``(N, 3, S, S)``
        (:func:`landmarklib.preprocessing.preprocess`)."""
        return np.stack([preprocess(image, self.input_size, self.mean, self.std,
                                    self.resize_ratio) for image in images])

    def outputs(self, images: Sequence[Image.Image]) -> tuple:
        """The deployment file's outputs for RGB photos.

        Returns:
            ``(log_probs, logits, embeddings, imagenet)``: float32 ``(N, C)``, ``(N, C)`` (for
            an ensemble, the members' mean logits), ``(N, F)`` and ``(N, F')`` (rows of unit
            length; ``imagenet``, the ImageNet embeddings, is ``None`` for a file without them,
            see :mod:`landmarklib.export`).
        """
        outputs = self.session.run(None, {"images": self.inputs(images)})
        return (*outputs[:3], outputs[3] if len(outputs) > 3 else None)

    def place(self, name: str) -> Place | None:
        """Where the landmark ``name`` (one of :attr:`class_names`) is: an added landmark's
        coordinates, else the landmark table's (:func:`landmarklib.places.place_for`)."""
        for landmark in self.memory.landmarks if self.memory else []:
            if landmark.name == name:
                return landmark.place
        return place_for(name)

    def recognise(self, images: Sequence[Image.Image], k: int = 3) -> tuple[Recognition, tuple]:
        """What the model, and its memory if it has one, conclude about RGB photos.

        Returns:
            ``(recognition, (log_probs, logits, embeddings, imagenet))``: a
            :class:`landmarklib.embeddings.Recognition` (calibrated probabilities over
            :attr:`class_names`, the known-landmark score and whether it passed the stored
            threshold, the ``k`` nearest remembered photos), and :meth:`outputs`. Without a
            memory: the network's probabilities, the top-1 probability as the score, every
            photo ``known``, no neighbours.
        """
        outputs = log_probs, logits, embeddings, imagenet = self.outputs(images)
        if self.memory is not None:
            return recognise(self.memory, log_probs, embeddings, logits, k, imagenet), outputs
        probabilities, none = np.exp(log_probs), np.zeros((len(log_probs), 0))
        return Recognition(probabilities, probabilities.max(axis=1).astype(np.float64),
                           np.ones(len(log_probs), bool), none.astype(np.int64),
                           none.astype(np.float32)), outputs

    def run(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (calibrated, over :attr:`class_names`) and embeddings of RGB
        photos.

        Returns:
            ``(probabilities, embeddings)``: float32 ``(N, C)``, each row summing to 1, and
            float32 ``(N, F)``, each row of unit length.
        """
        recognition, (_, _, embeddings, _) = self.recognise(images, k=1)
        return recognition.probabilities, embeddings

    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Class probabilities of RGB photos: float32 ``(N, C)``, each row summing to 1."""
        return self.run(images)[0]

    def top_k(self, image: Image.Image | str | os.PathLike, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most likely landmarks for one photo (a path or a PIL image).

        Returns:
            ``[(display name, probability), ...]``, most likely first.

        Raises:
            ValueError: ``k`` is not between 1 and the number of classes.
            landmarklib.images.ImageError: the file is missing or not a usable photo.
        """
        check_k(k, len(self.class_names))
        if not isinstance(image, Image.Image):
            image = open_image(image, short_side=self.input_size)
        return ranked(self.probabilities([image])[0], self.class_names, k)


def ranked(probabilities: np.ndarray, names: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` largest of ``probabilities`` ``(C,)`` with their names, largest first
    (ties in class-id order)."""
    best = np.argsort(-probabilities, kind="stable")[:operator.index(k)]
    return [(names[i], float(probabilities[i])) for i in best]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_k(k: int, n_classes: int) -> None:
    """Raise ValueError unless ``k`` is a whole number (int or numpy integer) in
    ``[1, n_classes]``."""
    try:
        whole = operator.index(k) if not isinstance(k, bool) else None
    except TypeError:
        whole = None
    if whole is None or not 1 <= whole <= n_classes:
        raise ValueError(f"k must be a whole number from 1 to {n_classes} (the number of "
                         f"landmarks the model knows), got {k!r}")


@dataclass
class Answer:
    """What :func:`classify_photos` found for one photo.

    Attributes:
        path: the photo file.
        probabilities, embedding: float32 ``(C,)`` and ``(F,)``; ``None`` when it failed. With a
            memory the probabilities are calibrated and cover the added landmarks too.
        error: why the photo could not be used (an ImageError naming the file), or ``None``.
        log_probs, logits: float32 ``(C,)``, the network's raw outputs (for calibration and
            the scores of :mod:`landmarklib.calibration`); ``None`` when it failed.
        imagenet: float32 ``(F',)``, the ImageNet embedding (:meth:`Predictor.outputs`), or
            ``None`` (it failed, or the file has none).
        known: the photo passed the memory's "I don't know" rule (always without a memory).
        neighbours: the most similar remembered photos, most similar first (none without a
            memory).
    """

    path: Path
    probabilities: np.ndarray | None = None
    embedding: np.ndarray | None = None
    error: Exception | None = None
    log_probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    known: bool = True
    neighbours: list[Neighbour] = field(default_factory=list)
    imagenet: np.ndarray | None = None


def classify_photos(paths, predictor: Predictor, batch_size: int = 16,
                    workers: int = 2, mirror: bool = False) -> Iterator[Answer]:
    """Classify many photos, streaming: decoding (in background threads,
    :func:`landmarklib.images.open_images`) overlaps the network, which runs on batches.

    Memory stays flat however many photos there are; a photo that cannot be used gets an
    :class:`Answer` with its error and never stops the others.

    Args:
        paths: photo files (a list, or a generator such as
            :func:`landmarklib.images.find_photos`).
        predictor: the model.
        batch_size, workers: photos per network run; decoding threads.
        mirror: classify each photo's horizontal mirror image instead (more views of a
            landmark added from a few photos, :func:`landmarklib.adding.add_landmark`).

    Yields:
        One :class:`Answer` per path, in the order given.
    """
    batch: list[tuple[Path, Image.Image | Exception]] = []
    for path, image in open_images(paths, predictor.input_size, workers, ahead=4 * batch_size):
        if mirror and not isinstance(image, Exception):
            image = ImageOps.mirror(image)
        batch.append((path, image))
        if len(batch) == batch_size:
            yield from _answer(batch, predictor)
            batch = []
    yield from _answer(batch, predictor)


def answer_images(images: Sequence[Image.Image], predictor: Predictor,
                  paths: Sequence[str | os.PathLike] | None = None) -> list[Answer]:
    """The :class:`Answer` of photos already opened (an upload, in the apps), one network
    run: what :func:`classify_photos` answers for files.

    Args:
        images: RGB photos (:func:`landmarklib.images.open_image`).
        predictor: the model.
        paths: the photos' names, for the answers (default: ``photo 0``, ``photo 1``...).
    """
    paths = paths or [f"photo {i}" for i in range(len(images))]
    return _answer([(Path(path), image) for path, image in zip(paths, images)], predictor)


def _answer(batch, predictor: Predictor) -> list[Answer]:
    photos = [image for _, image in batch if not isinstance(image, Exception)]
    if not photos:
        return [Answer(path, error=image) for path, image in batch]
    recognition, (log_probs, logits, embeddings, imagenet) = predictor.recognise(photos)
    memory = predictor.memory

    def answer(row: int, path: Path) -> Answer:
        neighbours = memory.neighbours(recognition.neighbours[row],
                                       recognition.similarities[row]) if memory else []
        return Answer(path, recognition.probabilities[row], embeddings[row], None,
                      log_probs[row], logits[row], bool(recognition.known[row]), neighbours,
                      None if imagenet is None else imagenet[row])

    return _answers(batch, answer)


def _answers(batch, answer) -> list[Answer]:
    """One :class:`Answer` per ``(path, image or error)`` of ``batch``: ``answer(row, path)``
    for the ``row``-th usable photo, an error answer for the others."""
    answers, row = [], 0
    for path, image in batch:
        if isinstance(image, Exception):
            answers.append(Answer(path, error=image))
        else:
            answers.append(answer(row, path))
            row += 1
    return answers


_PREDICTORS: dict[tuple, Predictor] = {}


def get_predictor(model: str | os.PathLike | None = None) -> Predictor:
    """The :class:`Predictor` for a deployment file, loaded on first use and then kept.

    The file is read again only if it or its memory changed on disk (a newly trained model,
    an added landmark).

    Raises:
        FileNotFoundError, ValueError: see :func:`model_path` and :class:`Predictor`.
    """
    path = model_path(model).resolve()
    memory = memory_path(path)
    key = (str(path), path.stat().st_mtime_ns,
           memory.stat().st_mtime_ns if memory.is_file() else None)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()
        _PREDICTORS[key] = Predictor(path)
    return _PREDICTORS[key]

"""Tag a photo library: walk folders of photos, recognise the landmark, write XMP sidecars.

What happens to each photo (its status in the report, :data:`STATUSES`):

* ``"has location"``: its EXIF already holds GPS coordinates, or a sidecar already holds a
  location (see :class:`landmarklib.sidecars.SidecarInfo`): it is left alone;
* ``"already tagged"``: a sidecar written by the same model is there (a run interrupted by
  Ctrl-C or a kill, run again, goes on where it stopped);
* ``"tagged"``: the top-1 probability reaches the threshold; the sidecar is written (merged into
  an existing one, atomically, see :mod:`landmarklib.sidecars`); a class without a place gets
  keywords only, and the report's ``reason`` says so. A photo that already has a sidecar under
  the other naming convention gets no second one: its sidecar is merged into;
* ``"not sure"``: below the threshold; nothing is written;
* ``"failed"``: the photo (or an existing sidecar) cannot be read; the reason is reported and
  the run goes on.

A location written by this project for another model is not "a location": the photo is tagged
again, unless its coordinates were edited since (then it is the user's, and left alone).

The photos are only ever read. The walk is streamed and the memory flat however large the
library: a thread pool decodes the next photos (:func:`landmarklib.images.open_image`, JPEG
draft decoding) while the model classifies a batch; at most two batches of decoded photos exist
at a time. Which files are photos is :func:`landmarklib.images.is_image_file`'s rule; hidden
files and folders are skipped, symbolic links inside the folders are not followed (a link
cannot lead the walk out of the folders given, nor round in a loop).

The model is anything with the shape of :class:`Classifier`, so that tagging does not depend on
how a model runs: :func:`classifier_from_predictor` wraps today's PyTorch
:class:`landmarklib.inference.Predictor`.
"""

from __future__ import annotations

import collections
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from landmarklib import sidecars
from landmarklib.atomic import is_abandoned
from landmarklib.images import ImageError, is_image_file, open_image
from landmarklib.places import place_for
from landmarklib.sidecars import DEFAULT_NAMING, NAMINGS, SidecarError, SidecarInfo

TAGGED, NOT_SURE, HAS_LOCATION, ALREADY_TAGGED, FAILED = (
    "tagged", "not sure", "has location", "already tagged", "failed")
STATUSES = (TAGGED, NOT_SURE, HAS_LOCATION, ALREADY_TAGGED, FAILED)

#: Least top-1 probability for writing a location into a photo's sidecar. Higher than
#: :data:`landmarklib.inference.DEFAULT_THRESHOLD` (0.35, for a suggestion a person sees next to
#: the photo): a sidecar goes into a library unseen, where a wrong place costs more than none.
TAG_THRESHOLD = 0.5

_GPS_IFD, _GPS_LATITUDE, _GPS_LONGITUDE = 0x8825, 2, 4


@dataclass
class Classifier:
    """What tagging needs from a model, however it runs (PyTorch today, ONNX Runtime soon).

    Attributes:
        classify: RGB PIL images (a list of N) -> class probabilities, a numpy float32 array
            ``(N, C)`` whose rows sum to 1.
        class_names: C display names, in class-id order (``"Eiffel Tower"``).
        class_folders: C class folders, in class-id order (``"16.Eiffel_Tower"``); the place of
            a class is looked up by folder (:func:`landmarklib.places.place_for`).
        model_id: names the model in the sidecars; a run skips photos tagged by the same id
            (:func:`model_id` makes one from a model file).
        input_size: the model's input side (pixels): photos are decoded at least this large.
    """

    classify: Callable[[list[Image.Image]], np.ndarray]
    class_names: Sequence[str]
    class_folders: Sequence[str]
    model_id: str
    input_size: int = 224


def model_id(path: str | os.PathLike) -> str:
    """``"<file name>@sha256:<first 12 hex digits>"``: names a model file by its content, so a
    retrained model under the same name is a new model."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name}@sha256:{digest.hexdigest()[:12]}"


def classifier_from_predictor(predictor) -> Classifier:
    """A :class:`Classifier` over a :class:`landmarklib.inference.Predictor` (from
    :func:`landmarklib.inference.get_predictor`): its ``probabilities`` (a torch tensor) as numpy,
    its model file's :func:`model_id`."""
    saved = predictor.saved
    return Classifier(
        classify=lambda images: predictor.probabilities(images).numpy(),
        class_names=list(predictor.class_names), class_folders=list(saved.class_folders),
        model_id=model_id(saved.path) if saved.path else "unsaved-model",
        input_size=saved.input_size)


@dataclass
class TagRow:
    """One photo's line in the report. ``probability`` is the top-1 probability (0-1);
    ``latitude``/``longitude`` are degrees (WGS84): the place written, or the one found."""

    file: str
    status: str
    landmark: str = ""
    probability: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    reason: str = ""


@dataclass
class TagSummary:
    """What a run did: one :class:`TagRow` per photo, in the order they were finished."""

    rows: list[TagRow] = field(default_factory=list)
    dry_run: bool = False
    _found: collections.Counter = field(default_factory=collections.Counter, repr=False)

    def add(self, row: TagRow) -> None:
        self.rows.append(row)
        self._found[row.status] += 1

    @property
    def counts(self) -> dict[str, int]:
        """``{status: number of photos}`` for every status in :data:`STATUSES`."""
        return {status: self._found[status] for status in STATUSES}

    @property
    def failed(self) -> list[TagRow]:
        return [row for row in self.rows if row.status == FAILED]

    def __str__(self) -> str:
        counts = self.counts
        text = (f"{len(self.rows)} photos: {counts[TAGGED]} tagged, {counts[NOT_SURE]} not sure, "
                f"{counts[HAS_LOCATION]} had a location, {counts[ALREADY_TAGGED]} already "
                f"tagged, {counts[FAILED]} failed")
        return text + (" (dry run: nothing written)" if self.dry_run else "")


# ------------------------------------------------------------------------------------ the walk


def walk_photos(paths: Iterable[str | os.PathLike],
                leftovers: list[Path] | None = None) -> Iterator[Path]:
    """The photos under ``paths``, streamed (folders in name order, depth first).

    Args:
        paths: folders (walked recursively; a folder given that is a link is followed) and
            files (yielded as given, photo or not, even missing: opening them says what is
            wrong).
        leftovers: if a list, abandoned temporary sidecars met on the way
            (:func:`landmarklib.atomic.is_abandoned`) are appended to it.

    Yields:
        Paths of photos (:func:`landmarklib.images.is_image_file`). Hidden files and folders
        (name starting with ``.``) are skipped, symbolic links inside folders are not followed,
        and a folder reached twice (nested ``paths``) is walked once.
    """
    seen: set[tuple[int, int]] = set()
    for given in paths:
        given = Path(given)
        if not given.is_dir():
            yield given
            continue
        stack = [given]
        while stack:
            folder = stack.pop()
            try:
                info = folder.stat()
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except OSError:
                continue  # unreadable folder: nothing in it can be tagged
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            folders = []
            for entry in entries:
                if entry.name.startswith("."):
                    if leftovers is not None and entry.name.endswith(".tmp") and \
                            ".xmp." in entry.name and is_abandoned(entry.path):
                        leftovers.append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and is_image_file(entry.name):
                    yield Path(entry.path)
            stack.extend(reversed(folders))


# ------------------------------------------------------------------------------------- the run


def tag_paths(paths: Iterable[str | os.PathLike], classifier: Classifier, *,
              threshold: float = TAG_THRESHOLD, naming: str = DEFAULT_NAMING,
              dry_run: bool = False, batch_size: int = 16, workers: int = 2,
              progress: bool = True, summary: TagSummary | None = None) -> TagSummary:
    """Tag every photo under ``paths`` (see this module's docstring for what happens to each).

    Args:
        paths: folders and photo files (see :func:`walk_photos`).
        classifier: the model (:class:`Classifier`; :func:`classifier_from_predictor`).
        threshold: least top-1 probability to write a sidecar (0-1).
        naming: the sidecar naming, one of :data:`landmarklib.sidecars.NAMINGS`.
        dry_run: write nothing (no sidecar; abandoned temporary files are left too); the
            summary says what would have been done.
        batch_size: photos classified at once.
        workers: threads decoding photos meanwhile.
        progress: show a tqdm progress bar (photos finished, per status).
        summary: a :class:`TagSummary` to fill in as the run goes, so that a caller that
            catches ``KeyboardInterrupt`` still has the rows of the photos finished.

    Returns:
        The summary: one :class:`TagRow` per photo.

    Raises:
        ValueError: a threshold outside [0, 1], an unknown naming, or a classifier whose
            answer does not have the shape ``(N, C)``.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"the threshold is a probability, from 0 to 1; got {threshold}")
    if naming not in NAMINGS:
        raise ValueError(f"unknown sidecar naming {naming!r}: choose one of {', '.join(NAMINGS)}")
    summary = summary if summary is not None else TagSummary()
    summary.dry_run = dry_run
    leftovers: list[Path] = []
    pending: collections.deque[tuple[Path, Future]] = collections.deque()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="landmarklib-decode")
    with tqdm(unit="photo", desc="Tagging", disable=not progress) as bar:
        def finish(row: TagRow) -> None:
            summary.add(row)
            bar.update(1)
            bar.set_postfix_str(", ".join(f"{n} {s}" for s, n in summary.counts.items() if n))

        try:
            for photo in walk_photos(paths, leftovers):
                known = _known_location(photo, classifier.model_id, naming)
                if known is not None:
                    finish(known)
                    continue
                pending.append((photo, pool.submit(_load, photo, classifier.input_size)))
                if len(pending) >= 2 * batch_size:  # decoding runs a batch ahead
                    _classify(pending, batch_size, classifier, threshold, naming, dry_run, finish)
            while pending:
                _classify(pending, batch_size, classifier, threshold, naming, dry_run, finish)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if not dry_run:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
    return summary


def _known_location(photo: Path, model: str, naming: str) -> TagRow | None:
    """The row of a photo whose sidecars settle it (already tagged, has a location, or a
    sidecar that cannot be read); ``None`` if it must be classified. Both namings are read:
    a location in either is a location."""
    for path in _sidecars_of(photo, naming):
        if not path.is_file():
            continue
        try:
            info = sidecars.read_sidecar(path)
        except SidecarError as error:
            return TagRow(str(photo), FAILED, reason=f"{error} (left as it is)")
        row = TagRow(str(photo), HAS_LOCATION, info.landmark or "", info.probability,
                     info.latitude, info.longitude, f"location in {path.name}")
        if info.model == model:
            row.status, row.reason = ALREADY_TAGGED, f"tagged by this model in {path.name}"
            return row
        if info.has_location and not _written_by_us(info):
            return row
    return None


def _sidecars_of(photo: Path, naming: str) -> list[Path]:
    """The photo's possible sidecars, the chosen naming's first."""
    return [sidecars.sidecar_path(photo, name)
            for name in (naming, *(other for other in NAMINGS if other != naming))]


def _target(photo: Path, naming: str) -> Path:
    """Where to write: the photo's existing sidecar (the chosen naming's first), so that a photo
    never gets two; else a new one with the chosen naming."""
    return next((path for path in _sidecars_of(photo, naming) if path.is_file()),
                sidecars.sidecar_path(photo, naming))


def _written_by_us(info: SidecarInfo) -> bool:
    """The sidecar's location is the one this project wrote (for some model), unedited."""
    place = place_for(info.folder) if info.model and info.folder else None
    return (place is not None and info.latitude is not None and info.longitude is not None
            and abs(info.latitude - place.latitude) < 1e-6
            and abs(info.longitude - place.longitude) < 1e-6)


def _load(photo: Path, input_size: int) -> Image.Image | tuple[float | None, float | None]:
    """In a worker thread: the photo decoded (:func:`landmarklib.images.open_image`), or, if its
    EXIF holds GPS coordinates, ``(latitude, longitude)`` from there instead (``None`` for a
    value that cannot be read). Raises ImageError or OSError."""
    found = _exif_gps(photo)
    return found if found is not None else open_image(photo, short_side=input_size)


def _exif_gps(photo: Path) -> tuple[float | None, float | None] | None:
    """``(latitude, longitude)`` in degrees if the photo's EXIF GPS directory holds both (PIL
    reads the file's header only), else ``None``."""
    try:
        with Image.open(photo) as image:
            gps = image.getexif().get_ifd(_GPS_IFD)
    except Exception:  # noqa: BLE001 - not readable: open_image will say what is wrong
        return None
    if _GPS_LATITUDE not in gps or _GPS_LONGITUDE not in gps:
        return None
    return (_exif_degrees(gps[_GPS_LATITUDE], gps.get(_GPS_LATITUDE - 1)),
            _exif_degrees(gps[_GPS_LONGITUDE], gps.get(_GPS_LONGITUDE - 1)))


def _exif_degrees(value, reference) -> float | None:
    """EXIF's (degrees, minutes, seconds) rationals and "N"/"S"/"E"/"W" as signed degrees."""
    try:
        degrees = float(value[0]) + float(value[1]) / 60 + float(value[2]) / 3600
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return -degrees if str(reference).strip().upper() in ("S", "W") else degrees


def _classify(pending: collections.deque, batch_size: int, classifier: Classifier,
              threshold: float, naming: str, dry_run: bool,
              finish: Callable[[TagRow], None]) -> None:
    """Take the next batch of photos off ``pending`` (waiting for them to be decoded), classify
    those that need it, write their sidecars."""
    photos, images = [], []
    batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
    for photo, future in batch:
        try:
            image = future.result()
        except ImageError as error:
            finish(TagRow(str(photo), FAILED, reason=error.reason))
            continue
        except OSError as error:  # e.g. permission denied
            finish(TagRow(str(photo), FAILED, reason=error.strerror or str(error)))
            continue
        if isinstance(image, tuple):
            finish(TagRow(str(photo), HAS_LOCATION, latitude=image[0], longitude=image[1],
                          reason="GPS coordinates in the photo's EXIF"))
        else:
            photos.append(photo)
            images.append(image)
    if not images:
        return
    probabilities = np.asarray(classifier.classify(images))
    if probabilities.shape != (len(images), len(classifier.class_names)):
        raise ValueError(f"the classifier answered {probabilities.shape} for {len(images)} photos "
                         f"and {len(classifier.class_names)} classes")
    for photo, row in zip(photos, probabilities):
        finish(_decide(photo, row, classifier, threshold, naming, dry_run))


def _decide(photo: Path, probabilities: np.ndarray, classifier: Classifier, threshold: float,
            naming: str, dry_run: bool) -> TagRow:
    """Tag one classified photo (or not), and say so in its report row."""
    top = int(np.argmax(probabilities))
    probability = float(probabilities[top])
    folder, name = classifier.class_folders[top], classifier.class_names[top]
    place = place_for(folder) or place_for(name)
    name = place.name if place else name
    row = TagRow(str(photo), NOT_SURE, name, probability)
    if probability < threshold:
        row.reason = f"top-1 probability below the threshold {threshold:g}"
        return row
    row.status = TAGGED
    if place is None:
        row.reason = "no known place for this landmark: keywords only"
    else:
        row.latitude, row.longitude = place.latitude, place.longitude
    if dry_run:
        row.reason = "; ".join(filter(None, [row.reason, "dry run: nothing written"]))
        return row
    try:
        sidecars.write_sidecar(_target(photo, naming),
                               sidecars.Tag(name, folder, probability, classifier.model_id, place))
    except (SidecarError, OSError) as error:
        return TagRow(str(photo), FAILED, name, probability,
                      reason=f"the sidecar cannot be written: {error}")
    return row

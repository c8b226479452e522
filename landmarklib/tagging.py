"""Tag a photo library: walk folders of photos, recognise the landmark, write XMP sidecars.

What happens to each photo (its status in the report, :data:`STATUSES`):

* ``"has location"``: its EXIF already holds GPS coordinates, or a sidecar already holds a
  location (see :class:`landmarklib.sidecars.SidecarInfo`), or held one this project wrote
  and someone changed or deleted since: it is left alone;
* ``"already tagged"``: a sidecar written by the same tagger (:func:`tagger_id`) is there (a
  run interrupted by Ctrl-C or a kill, run again, goes on where it stopped);
* ``"tagged"``: the top-1 probability (calibrated when the model has a memory; an added
  landmark is one of the classes) reaches the threshold; the sidecar is written (merged into
  an existing one, atomically, see :mod:`landmarklib.sidecars`); a class without a place gets
  keywords only, and the report's ``reason`` says so. A photo that already has a sidecar under
  the other naming convention gets no second one: its sidecar is merged into;
* ``"not sure"``: below the threshold, or, for a model with a memory
  (:mod:`landmarklib.memory`), below its stored "I don't know" threshold; nothing is written
  (an earlier tagger's answer in the sidecar stays, and the reason says so);
* ``"failed"``: the photo (or an existing sidecar) cannot be read; the reason is reported and
  the run goes on.

A location written by this project for another tagger is not "a location": the photo is tagged
again, unless any part of its location was changed since, by a person or a program (then it is
the user's, and left alone): the sidecar's ``LocationDigest`` tells (see
:mod:`landmarklib.sidecars`; a sidecar without one: its coordinates, city and country are
still the landmark's).

The photos are only ever read. The walk (:func:`landmarklib.images.find_photos`: the project's
one rule for which files are photos; hidden files and folders skipped; symbolic links never
followed out of the folders given, nor round in a loop) is streamed, and so is classification
(:func:`landmarklib.deployment.classify_photos`: threads decode the next photos while the
network classifies a batch), so memory stays flat however large the library.

The model is a deployment file run by ONNX Runtime (:class:`landmarklib.deployment.Predictor`);
the sidecars record :func:`tagger_id`: its ``model_id`` (the file's name and a hash of its
content) and, with a memory, a hash of what else the answers depend on. A landmark added,
removed or given coordinates makes a new tagger, so the next run answers the photos again.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from landmarklib import sidecars
from landmarklib.deployment import classify_photos
from landmarklib.files import is_abandoned
from landmarklib.images import find_photos
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


# ------------------------------------------------------------------------------------- the run


def tag_paths(paths: Iterable[str | os.PathLike], predictor, *,
              threshold: float = TAG_THRESHOLD, naming: str = DEFAULT_NAMING,
              dry_run: bool = False, batch_size: int = 16, workers: int = 2,
              progress: bool = True, summary: TagSummary | None = None) -> TagSummary:
    """Tag every photo under ``paths`` (see this module's docstring for what happens to each).

    Args:
        paths: folders and photo files (see :func:`landmarklib.images.find_photos`).
        predictor: the model, a :class:`landmarklib.deployment.Predictor` (or anything with its
            ``run``, ``input_size``, ``class_names``, ``class_folders`` and ``model_id``).
        threshold: least top-1 probability to write a sidecar (0-1).
        naming: the sidecar naming, one of :data:`landmarklib.sidecars.NAMINGS`.
        dry_run: write nothing; the summary says what would have been done.
        batch_size, workers: photos classified at once; threads decoding photos meanwhile.
        progress: show a tqdm progress bar (photos finished, per status).
        summary: a :class:`TagSummary` to fill in as the run goes, so that a caller that
            catches ``KeyboardInterrupt`` still has the rows of the photos finished.

    Returns:
        The summary: one :class:`TagRow` per photo.

    Raises:
        ValueError: a threshold outside [0, 1], or an unknown naming.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"the threshold is a probability, from 0 to 1; got {threshold}")
    if naming not in NAMINGS:
        raise ValueError(f"unknown sidecar naming {naming!r}: choose one of {', '.join(NAMINGS)}")
    from tqdm.auto import tqdm  # here, not at import: the command line starts faster

    summary = summary if summary is not None else TagSummary()
    summary.dry_run = dry_run
    tagger, earlier = tagger_id(predictor), {}  # earlier: photo -> an earlier tagger's answer
    with tqdm(unit="photo", desc="Tagging", disable=not progress) as bar:
        def finish(row: TagRow) -> None:
            summary.add(row)
            bar.update(1)
            bar.set_postfix_str(", ".join(f"{n} {s}" for s, n in summary.counts.items() if n))

        def to_classify() -> Iterator[Path]:  # runs in this thread, as classify_photos asks
            for photo in find_photos(paths):
                known, other = _known_location(photo, predictor, tagger, naming)
                if known is not None:
                    finish(known)
                    continue
                if other is not None:  # kept until the photo is answered: memory stays flat
                    earlier[str(photo)] = other
                yield photo

        for answer in classify_photos(to_classify(), predictor, batch_size, workers):
            other = earlier.pop(str(answer.path), None)
            if answer.error is not None:
                finish(TagRow(str(answer.path), FAILED, reason=getattr(
                    answer.error, "reason", str(answer.error))))
            else:
                finish(_decide(answer, predictor, tagger, threshold, naming, dry_run, other))
    return summary


def _known_location(photo: Path, predictor, tagger: str, naming: str
                    ) -> tuple[TagRow | None, str | None]:
    """``(row, earlier)``: the row of a photo whose EXIF or sidecars settle it (has a location,
    already tagged by ``tagger``, or a sidecar that cannot be read), ``None`` if it must be
    classified; and the landmark another tagger wrote into a sidecar of it (or ``None``). Both
    namings are read: a location in either is a location."""
    found, earlier = _exif_gps(photo), None
    if found is not None:
        return TagRow(str(photo), HAS_LOCATION, latitude=found[0], longitude=found[1],
                      reason="GPS coordinates in the photo's EXIF"), None
    for path in filter(Path.is_file, _sidecars_of(photo, naming)):
        try:
            info = sidecars.read_sidecar(path)
        except SidecarError as error:
            return TagRow(str(photo), FAILED, reason=f"{error} (left as it is)"), None
        row = TagRow(str(photo), HAS_LOCATION, info.landmark or "", info.probability,
                     info.latitude, info.longitude, f"location in {path.name}")
        if info.model == tagger:
            row.status, row.reason = ALREADY_TAGGED, f"tagged by this model in {path.name}"
            return row, None
        if info.location_unedited is False:  # even a location deleted by hand
            row.reason = f"location in {path.name} changed since it was tagged: the user's"
            return row, None
        if info.has_location and not _written_by_us(info, predictor):
            return row, None
        earlier = earlier or (info.landmark if info.model else None)
    return None, earlier


def _sidecars_of(photo: Path, naming: str) -> list[Path]:
    """The photo's possible sidecars, the chosen naming's first."""
    return [sidecars.sidecar_path(photo, name)
            for name in (naming, *(other for other in NAMINGS if other != naming))]


def _target(photo: Path, naming: str) -> Path:
    """Where to write: the photo's existing sidecar (the chosen naming's first), so that a photo
    never gets two; else a new one with the chosen naming."""
    return next((path for path in _sidecars_of(photo, naming) if path.is_file()),
                sidecars.sidecar_path(photo, naming))


def _written_by_us(info: SidecarInfo, predictor) -> bool:
    """The sidecar's location is the one this project wrote (for some tagger), unedited: its
    ``LocationDigest`` says so; in a sidecar without one, its coordinates, city and country are
    the landmark table's or those of the predictor's added landmark of that name."""
    if info.location_unedited is not None:
        return info.location_unedited
    where = getattr(predictor, "place", place_for)
    place = where(info.folder) if info.model and info.folder else None
    return (place is not None and place.latitude is not None and place.longitude is not None
            and (info.city, info.country) == (place.city, place.country)
            and info.latitude is not None and info.longitude is not None
            and abs(info.latitude - place.latitude) < 1e-6
            and abs(info.longitude - place.longitude) < 1e-6)


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


def sidecar_for(photo_name: str, probabilities: np.ndarray, predictor,
                threshold: float = TAG_THRESHOLD, naming: str = DEFAULT_NAMING,
                known: bool = True) -> Path | None:
    """The sidecar a photo would get, for a photo that is not in a library (an upload, in the
    apps): written into a new temporary folder, for the user to download and put next to it.

    Args:
        photo_name: the photo's file name (``"IMG_0042.jpg"``); the sidecar is named after it.
        probabilities: float ``(C,)``, the photo's class probabilities.
        predictor: the model that gave them (its class names and folders, its ``model_id``).
        threshold, naming: as in :func:`tag_paths`.
        known: the photo passed the memory's "I don't know" rule
            (:attr:`landmarklib.deployment.Answer.known`).

    Returns:
        The sidecar file, or ``None`` when the model is not sure (top-1 below ``threshold``,
        or not ``known``).

    Raises:
        SidecarError: exiv2 could not write it.
    """
    import tempfile

    tag = _tag_of(probabilities, predictor, tagger_id(predictor))
    if tag.probability < threshold or not known:
        return None
    path = sidecars.sidecar_path(Path(tempfile.mkdtemp(prefix="landmarklib-")) /
                                 Path(photo_name).name, naming)
    return sidecars.write_sidecar(path, tag)


def _tag_of(probabilities: np.ndarray, predictor, tagger: str) -> sidecars.Tag:
    """What would be written for a photo's top-1 class (the place's name where there is one)."""
    top = int(np.argmax(probabilities))
    folder, name = predictor.class_folders[top], predictor.class_names[top]
    place = predictor.place(name) or place_for(folder)
    return sidecars.Tag(place.name if place else name, folder, float(probabilities[top]),
                        tagger, place)


def tagger_id(predictor) -> str:
    """What a sidecar records as the tagger (``Model``): the deployment file's ``model_id``
    and, for a model with a memory, ``+memory@sha256:`` and the first 12 hex digits of a hash
    of what else its answers depend on: the temperature, the "I don't know" rule, the margin
    and the added landmarks (names, places, prototypes). Re-indexing with the same result keeps
    it; adding, removing or moving a landmark changes it.

    Args:
        predictor: a :class:`landmarklib.deployment.Predictor` (or anything with its
            ``model_id`` and, optionally, ``memory``).
    """
    memory = getattr(predictor, "memory", None)
    if memory is None:
        return predictor.model_id
    digest = hashlib.sha256(json.dumps(
        [memory.temperature, memory.score, memory.threshold, memory.margin,
         [[lm.name, lm.city, lm.country, lm.latitude, lm.longitude] for lm in memory.landmarks]]
    ).encode())
    for landmark in memory.landmarks:
        digest.update(np.ascontiguousarray(landmark.prototype, dtype=np.float32).tobytes())
    return f"{predictor.model_id}+memory@sha256:{digest.hexdigest()[:12]}"


def _decide(answer, predictor, tagger: str, threshold: float, naming: str, dry_run: bool,
            earlier: str | None) -> TagRow:
    """Tag one classified photo (an :class:`~landmarklib.deployment.Answer`) or not, and say so
    in its report row (``earlier``: the answer of another tagger in its sidecar, kept)."""
    photo, tag = answer.path, _tag_of(answer.probabilities, predictor, tagger)
    name, probability, place = tag.name, tag.probability, tag.place
    row = TagRow(str(photo), NOT_SURE, name, probability)
    if probability < threshold or not answer.known:
        row.reason = (f"top-1 probability below the threshold {threshold:g}"
                      if probability < threshold else
                      "not sure it shows a landmark the model knows (its memory's threshold)")
        if earlier:
            row.reason += f"; the sidecar keeps an earlier tagger's answer, {earlier}"
        return row
    row.status = TAGGED
    if place is None:
        row.reason = "no known place for this landmark: keywords only"
    elif place.latitude is None:
        row.reason = "no coordinates for this landmark: its city and country only"
    else:
        row.latitude, row.longitude = place.latitude, place.longitude
    if dry_run:
        row.reason = "; ".join(filter(None, [row.reason, "dry run: nothing written"]))
        return row
    target = _target(photo, naming)
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        if is_abandoned(leftover):  # a temporary file of a run that was killed
            leftover.unlink(missing_ok=True)
    try:
        sidecars.write_sidecar(target, tag)
    except (SidecarError, OSError) as error:
        return TagRow(str(photo), FAILED, name, probability,
                      reason=f"the sidecar cannot be written: {error}")
    return row

"""XMP sidecars: where a photo was taken, written next to the photo for photo managers to read.

A sidecar is a small XMP file beside the photo; photo managers read it on top of the metadata
inside the photo, so the photo itself is never opened for writing. Two naming conventions exist
(:data:`NAMINGS`):

* ``photo.jpg.xmp`` (the default): digiKam's, darktable's, Immich's first choice; ``IMG_1.jpg``
  and ``IMG_1.cr2`` (RAW + JPEG) get one each;
* ``photo.xmp``: ExifTool's and Adobe's (Lightroom reads sidecars of RAW files only).

What :func:`write_sidecar` writes; an existing sidecar is merged, every other property (such as
``xmp:Rating``, a title or darktable's edit history) kept:

* ``exif:GPSLatitude``, ``exif:GPSLongitude`` in XMP's GPS coordinate form (``"48,51.504000N"``:
  degrees, minutes to 6 decimals, hemisphere), with ``exif:GPSVersionID`` ``"2.2.0.0"`` and
  ``exif:GPSMapDatum`` ``"WGS-84"``: the map position (Immich documents reading exactly these
  two properties; digiKam, darktable and ExifTool read them too); none for a landmark added
  with its city and country but no coordinates;
* ``photoshop:City``, ``photoshop:Country`` and ``Iptc4xmpCore:Location`` (the landmark's name):
  the City, Country and Sublocation of the IPTC Core panels (digiKam, Lightroom, Bridge);
* ``Iptc4xmpExt:LocationShown`` (name, sublocation, city, country, coordinates): the IPTC
  Extension field for the place a photo *shows*, which is what a landmark recognised in the
  pixels is (the GPS fields say where the camera was; for a landmark photo that is close);
* keywords, merged without duplicates (ignoring case): ``dc:subject`` (landmark, city,
  country; nearly every photo manager) and ``lr:hierarchicalSubject``
  (``Places|France|Paris|Eiffel Tower``: Lightroom, digiKam, darktable; Immich reads tags from
  ``digiKam:TagsList``, then ``lr:hierarchicalSubject``, not ``dc:subject``), and
  ``digiKam:TagsList`` (``Places/France/Paris/Eiffel Tower``) if the sidecar already has one;
* in the project's namespace (:data:`NAMESPACE`): ``Model``, ``Landmark``, ``ClassFolder``,
  ``Probability`` (top-1), ``TaggedAt``, ``AddedKeywords`` (for a later answer to take out),
  ``LocationDigest`` (has anyone changed the location since?); and ``xmp:MetadataDate``.

Why exiv2 (``python-exiv2``) rather than ExifTool: a C++ library inside this process (no Perl
program behind a pipe to install and feed), the one digiKam uses; its XMP Toolkit writes the
XML. ExifTool is the tests' second, independent reader. One thread at a time (exiv2's XMP
Toolkit is not thread-safe).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from landmarklib.files import atomic_path
from landmarklib.gps import gps_coordinate, parse_gps_coordinate
from landmarklib.places import Place

if TYPE_CHECKING:  # imported when a sidecar is read or written: the CLI starts without it
    import exiv2

#: The project's XMP namespace (URI) and the prefix it is written with.
NAMESPACE = "https://github.com/landmarklib/ns/1.0/"
PREFIX = "landmarklib"

#: Sidecar naming conventions, by the name they give ``photo.jpg``'s sidecar.
NAMINGS = ("photo.jpg.xmp", "photo.xmp")
DEFAULT_NAMING = "photo.jpg.xmp"

_KEYWORD_ROOT = "Places"
_GPS = ("Xmp.exif.GPSLatitude", "Xmp.exif.GPSLongitude")
#: Location properties (besides the GPS pair) a person or another program may have filled in.
_PLACE_TEXT = ("Xmp.photoshop.City", "Xmp.photoshop.State", "Xmp.photoshop.Country",
               "Xmp.iptc.CountryCode", "Xmp.iptc.Location", "Xmp.iptcExt.LocationShown",
               "Xmp.iptcExt.LocationCreated")
#: What this module writes as a location, all replaced together (with any struct members).
_OURS = _GPS + ("Xmp.exif.GPSVersionID", "Xmp.exif.GPSMapDatum", "Xmp.photoshop.City",
                "Xmp.photoshop.Country", "Xmp.iptc.Location", "Xmp.iptcExt.LocationShown")
_KEYWORD_BAGS = ("Xmp.dc.subject", "Xmp.lr.hierarchicalSubject", "Xmp.digiKam.TagsList")


class SidecarError(ValueError):
    """A sidecar that cannot be read or written. ``str(error)`` is ``"<file>: <what>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Tag:
    """What to write into a photo's sidecar.

    Attributes:
        name: the landmark's name, e.g. ``"Eiffel Tower"``.
        folder: its class folder, e.g. ``"16.Eiffel_Tower"``.
        probability: the model's top-1 probability, 0-1.
        model: which model answered (:func:`landmarklib.tagging.tagger_id`).
        place: where the landmark is; ``None`` for a class without a place (keywords only).
        tagged_at: when (an aware datetime; default: now, UTC, whole seconds).
    """

    name: str
    folder: str
    probability: float
    model: str
    place: Place | None
    tagged_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(
        datetime.timezone.utc).replace(microsecond=0))

    @property
    def keywords(self) -> list[str]:
        """``dc:subject`` keywords: the landmark's name, then its city and country (if known)."""
        city, country = (self.place.city, self.place.country) if self.place else ("", "")
        return [part for part in (self.name, city, country) if part]

    @property
    def keyword_path(self) -> list[str]:
        """The hierarchical keyword, root first: ``["Places", "France", "Paris", "Eiffel
        Tower"]`` (``["Places", name]`` without a place; unknown levels left out)."""
        return [_KEYWORD_ROOT, *reversed(self.keywords[1:]), self.name]


@dataclass(frozen=True)
class SidecarInfo:
    """What a sidecar says about where its photo was taken, and who said it.

    Attributes:
        path: the sidecar file.
        latitude, longitude: degrees (WGS84) from ``exif:GPSLatitude``/``GPSLongitude``;
            ``None`` if absent or not in a form this module reads.
        has_location: the sidecar holds a location: the GPS pair (readable or not) or any place
            text (``photoshop:City``/``State``/``Country``, ``Iptc4xmpCore:Location``/
            ``CountryCode``, ``Iptc4xmpExt:LocationShown``/``LocationCreated``).
        city, country: ``photoshop:City`` and ``photoshop:Country`` (``""`` if absent).
        keywords: ``dc:subject``.
        model, landmark, folder, probability, tagged_at: the project's own properties, written
            by :func:`write_sidecar` (``None`` when this project never tagged the photo).
        location_unedited: the location properties are as :func:`write_sidecar` wrote them
            (``None``: no ``LocationDigest``, e.g. written by an older landmarklib).
    """

    path: Path
    latitude: float | None = None
    longitude: float | None = None
    has_location: bool = False
    city: str = ""
    country: str = ""
    keywords: tuple[str, ...] = ()
    model: str | None = None
    landmark: str | None = None
    folder: str | None = None
    probability: float | None = None
    tagged_at: str | None = None
    location_unedited: bool | None = None


def sidecar_path(photo: str | os.PathLike, naming: str = DEFAULT_NAMING) -> Path:
    """The sidecar of ``photo`` under a naming convention (see :data:`NAMINGS`).

    >>> sidecar_path("trip/IMG_1.JPG").as_posix()
    'trip/IMG_1.JPG.xmp'
    >>> sidecar_path("trip/IMG_1.JPG", "photo.xmp").as_posix()
    'trip/IMG_1.xmp'

    Raises:
        ValueError: an unknown naming.
    """
    photo = Path(photo)
    if naming == "photo.jpg.xmp":
        return photo.with_name(photo.name + ".xmp")
    if naming == "photo.xmp":
        return photo.with_suffix(".xmp")
    raise ValueError(f"unknown sidecar naming {naming!r}: choose one of {', '.join(NAMINGS)}")


def read_sidecar(path: str | os.PathLike) -> SidecarInfo:
    """Read what a sidecar says about the photo's location and this project's tag.

    Raises:
        SidecarError: the file cannot be read or is not valid XMP (exiv2's reason in the
            message). A missing file is an error too: check ``path.exists()`` first.
    """
    path = Path(path)
    xmp = _read_xmp(path)
    text = {d.key(): d.toString() for d in xmp}
    latitude = longitude = None
    if all(key in text for key in _GPS):
        with contextlib.suppress(ValueError):  # not a form this module reads: None, None
            latitude, longitude = (parse_gps_coordinate(text[key]) for key in _GPS)
    try:
        probability = float(text[f"Xmp.{PREFIX}.Probability"])
    except (KeyError, ValueError):
        probability = None
    return SidecarInfo(
        path=path, latitude=latitude, longitude=longitude,
        has_location=all(key in text for key in _GPS) or any(key in text for key in _PLACE_TEXT),
        city=text.get("Xmp.photoshop.City", ""), country=text.get("Xmp.photoshop.Country", ""),
        keywords=tuple(_bag(xmp, "Xmp.dc.subject")), model=text.get(f"Xmp.{PREFIX}.Model"),
        landmark=text.get(f"Xmp.{PREFIX}.Landmark"), folder=text.get(f"Xmp.{PREFIX}.ClassFolder"),
        probability=probability, tagged_at=text.get(f"Xmp.{PREFIX}.TaggedAt"),
        location_unedited=None if f"Xmp.{PREFIX}.LocationDigest" not in text else
        text[f"Xmp.{PREFIX}.LocationDigest"] == _location_digest(xmp))


def write_sidecar(path: str | os.PathLike, tag: Tag) -> Path:
    """Write ``tag`` into the sidecar at ``path``, merged into what is there, atomically.

    The location properties listed in this module's docstring are replaced (all of them: a
    class without a place removes an earlier answer's location), keywords are merged, and a
    keyword this project added for an earlier answer is taken out. Every other property is kept.
    The file is written to a temporary file in the same folder and renamed over ``path``
    (:func:`landmarklib.files.atomic_path`): it is never half-written. Check first whether the
    photo already has a location (:func:`read_sidecar`): this function overwrites one.

    Args:
        path: the sidecar (see :func:`sidecar_path`); created if missing.
        tag: what to write.

    Returns:
        ``path``.

    Raises:
        SidecarError: the existing sidecar cannot be read (it is then left as it is), or exiv2
            cannot write the new one.
        OSError: the folder is not writable.
    """
    import exiv2

    path = Path(path)
    _register_namespace()
    xmp = _read_xmp(path) if path.exists() else exiv2.XmpData()
    _erase(xmp, _OURS)
    if tag.place is not None:
        _set_location(xmp, tag.name, tag.place)
    _merge_keywords(xmp, tag)
    stamp = tag.tagged_at.isoformat()
    for name, value in (("Model", tag.model), ("Landmark", tag.name),
                        ("ClassFolder", tag.folder), ("Probability", f"{tag.probability:.4f}"),
                        ("TaggedAt", stamp), ("LocationDigest", _location_digest(xmp))):
        xmp[f"Xmp.{PREFIX}.{name}"] = value
    xmp["Xmp.xmp.MetadataDate"] = stamp
    writing = _exiv2_errors(path, "cannot be written by exiv2")
    with atomic_path(path, durable=False) as tmp, writing:
        image = exiv2.ImageFactory.create(exiv2.ImageType.xmp, str(tmp))
        image.setXmpData(xmp)
        image.writeMetadata()
    return path


# ------------------------------------------------------------------------------ exiv2 details


@functools.cache
def _register_namespace() -> None:
    """Start exiv2's XMP Toolkit and register the project's namespace (once per process)."""
    import exiv2

    exiv2.XmpParser.initialize()
    exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)


class _Collect(logging.Handler):
    """Keeps exiv2's failures: every error, and warnings that say something failed."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR or "Failed" in message:
            self.failures.append(message)


@contextlib.contextmanager
def _exiv2_errors(path: Path, what: str) -> Iterator[None]:
    """Turn exiv2's failures into :class:`SidecarError` ``"<path>: <what> (<exiv2's words>)"``.

    exiv2 reports a damaged XMP packet only in its log ("Failed to decode XMP metadata"), which
    python-exiv2 sends to the ``exiv2`` logger, and returns no properties (merging into that
    would lose the file); a failed encoding leaves a packet header alone in the file.
    """
    import exiv2

    _register_namespace()
    handler, logger = _Collect(), logging.getLogger("exiv2")
    logger.addHandler(handler)
    try:
        yield
    except exiv2.Exiv2Error as error:
        raise SidecarError(path, f"{what} ({error})") from None
    finally:
        logger.removeHandler(handler)
    if handler.failures:
        raise SidecarError(path, f"{what} ({'; '.join(handler.failures)})")


def _read_xmp(path: Path) -> exiv2.XmpData:
    import exiv2

    with _exiv2_errors(path, "is not an XMP sidecar exiv2 can read"):
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
        return image.xmpData()


def _within(xmp: exiv2.XmpData, keys: tuple[str, ...]) -> list:
    """The properties ``keys`` and, for an array or struct, their members (``key[1]/...``)."""
    members = tuple(key + mark for key in keys for mark in "[/")
    return [d for d in xmp if d.key() in keys or d.key().startswith(members)]


def _erase(xmp: exiv2.XmpData, keys: tuple[str, ...]) -> None:
    """Remove the properties ``keys`` and their members (:func:`_within`)."""
    for found in [d.key() for d in _within(xmp, keys)]:
        del xmp[found]


def _location_digest(xmp: exiv2.XmpData) -> str:
    """SHA-256 (16 hex digits) of the location properties and members, sorted, in one form:
    members without their prefix (ExifTool writes ``Iptc4xmpExt:``, exiv2 ``iptcExt:``), degrees
    to 6 decimals, NFC text; no containers (exiv2 reads back a ``type="Struct"`` node)."""
    found = sorted(f"{re.sub('/[^/:]+:', '/', d.key())}={_same_form(d.key(), d.toString())}"
                   for d in _within(xmp, _GPS + _PLACE_TEXT)
                   if not d.toString().startswith('type="'))
    return hashlib.sha256("\n".join(found).encode()).hexdigest()[:16]


def _same_form(key: str, value: str) -> str:
    if key.endswith(("GPSLatitude", "GPSLongitude")):
        with contextlib.suppress(ValueError):
            return f"{parse_gps_coordinate(value):.6f}"
    return unicodedata.normalize("NFC", value)


def _set_location(xmp: exiv2.XmpData, name: str, place: Place) -> None:
    import exiv2

    gps = {}  # none for a landmark added with a city and country but no coordinates
    if place.latitude is not None and place.longitude is not None:
        gps = {"GPSLatitude": gps_coordinate(place.latitude, "latitude"),
               "GPSLongitude": gps_coordinate(place.longitude, "longitude")}
        for member, value in {"GPSVersionID": "2.2.0.0", "GPSMapDatum": "WGS-84", **gps}.items():
            xmp[f"Xmp.exif.{member}"] = value
    for key, value in (("photoshop.City", place.city), ("photoshop.Country", place.country),
                       ("iptc.Location", name)):
        if value:  # an added landmark may have no city, no country
            xmp[f"Xmp.{key}"] = value
    bag = exiv2.XmpTextValue()
    bag.setXmpArrayType(exiv2.XmpValue.XmpArrayType.xaBag)
    xmp.add(exiv2.XmpKey("Xmp.iptcExt.LocationShown"), bag)
    shown = "Xmp.iptcExt.LocationShown[1]/iptcExt:"  # exiv2 names Iptc4xmpExt "iptcExt"
    xmp[shown + "LocationName"] = exiv2.LangAltValue(f'lang="x-default" {name}')
    for member, value in (("Sublocation", name), ("City", place.city),
                          ("CountryName", place.country), *gps.items()):
        if value:
            xmp[shown + member] = value


def _merge_keywords(xmp: exiv2.XmpData, tag: Tag) -> None:
    """Take out what an earlier answer added, then add this answer's keywords (no duplicates,
    ignoring case) and record what was really added in ``landmarklib:AddedKeywords``."""
    earlier = {k.casefold() for k in _bag(xmp, f"Xmp.{PREFIX}.AddedKeywords")}
    wanted = {"Xmp.dc.subject": tag.keywords,
              "Xmp.lr.hierarchicalSubject": ["|".join(tag.keyword_path)]}
    if "Xmp.digiKam.TagsList" in {d.key() for d in xmp}:
        wanted["Xmp.digiKam.TagsList"] = ["/".join(tag.keyword_path)]
    added = []
    for key in _KEYWORD_BAGS:
        kept = [k for k in _bag(xmp, key) if k.casefold() not in earlier]
        new = [k for k in dict.fromkeys(wanted.get(key, ()))
               if k and k.casefold() not in {old.casefold() for old in kept}]
        added += new
        _set_bag(xmp, key, kept + new, seq=key == "Xmp.digiKam.TagsList")
    _set_bag(xmp, f"Xmp.{PREFIX}.AddedKeywords", added)


def _bag(xmp: exiv2.XmpData, key: str) -> list[str]:
    """The items of an XMP array (bag or seq), ``[]`` if absent."""
    for datum in xmp:
        if datum.key() == key:
            value = datum.value()
            return [value.toString(i) for i in range(value.count())]
    return []


def _set_bag(xmp: exiv2.XmpData, key: str, items: list[str], seq: bool = False) -> None:
    """Replace an XMP array by ``items`` (removed when empty)."""
    import exiv2

    _erase(xmp, (key,))
    if items:
        value = exiv2.XmpArrayValue(exiv2.TypeId.xmpSeq if seq else exiv2.TypeId.xmpBag)
        for item in items:
            value.read(item)
        xmp[key] = value


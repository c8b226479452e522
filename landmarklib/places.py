"""Where the landmarks are: names, places and map links for the class folders.

The dataset names its classes after folders such as ``09.Golden_Gate_Bridge``.
This module turns those folder names into something a person can read, and
knows, for each landmark, its display name, city or region, country and
coordinates (decimal degrees, WGS84, 4 decimals: about 10 m), from two tables
that ship inside the package:

* ``landmarks.csv``: the 50 landmarks of the course's dataset
  (:func:`all_places`);
* ``landmarks44.csv``: the 44 classes of the stand-in dataset ``landmarks44``
  (``00.anıtkabir`` ... ``43.westminster_abbey``), used where the course's data
  cannot be downloaded (:func:`stand_in_places`). Six of them are also among
  the 50 (Eiffel Tower, Golden Gate Bridge, Machu Picchu, Sydney Harbour Bridge,
  Taj Mahal, Trevi Fountain) and have the same coordinates in both tables.

:func:`place_for` looks in both, so every class folder of either dataset has a
place::

    >>> from landmarklib.places import display_name, place_for
    >>> display_name("09.Golden_Gate_Bridge")
    'Golden Gate Bridge'
    >>> place_for("Golden Gate Bridge").where
    'San Francisco, United States'

Two kinds of name are used, on purpose:

* :func:`display_name` is a plain rule that works for *any* dataset laid out
  as one folder per class: drop a leading ``NN.`` number and turn underscores
  into spaces. It never looks at the table.
* :attr:`Place.name` is the name from the table, which may be nicer
  (``Wrocław's Dwarves`` where the folder says ``04.Wroclaws_Dwarves``).

A landmark is a point here, even when the real thing is not:

* National parks use a well-known point inside them (Haleakalā and Mount
  Rainier: the summit; Yellowstone: Old Faithful; Death Valley: Furnace Creek;
  Grand Canyon: Mather Point on the South Rim; Banff: the town; Badlands: the
  Sage Creek area of the North Unit).
* The Great Barrier Reef, 2,300 km long, uses a representative point off
  Townsville, Queensland (-18.2871, 147.6992).
* The Great Wall of China uses Badaling, the most visited section, near Beijing.
* The Dead Sea, shared by Israel, Jordan and the West Bank, uses Ein Bokek on
  its western shore, where many visitors' photos are taken.
* Niagara Falls, on the Canada–United States border, uses the Horseshoe Falls
  seen from Niagara Falls, Ontario; the Matterhorn, on the Swiss–Italian
  border, is listed under Zermatt, Switzerland.

The stand-in classes are mostly buildings, and each point is the building
itself (not its city's centre), from the coordinates its encyclopaedia entry
publishes (the less famous ones also compared with a second public listing,
within about 100 m); the photos of each folder were looked at to be sure which
landmark it is (``37.sydney`` shows the
Sydney Harbour Bridge, ``13.fsm`` the Fatih Sultan Mehmet Bridge,
``31.st_louis_cathedral`` the cathedral of New Orleans, ``42.ulu_cami`` the
Grand Mosque of Bursa, ``25.pantheon`` the one in Rome). Three are areas:

* Cappadocia (``18.kapadokya``) uses the town of Göreme, at the heart of its
  valleys of rock formations;
* Pamukkale uses a point on its travertine terraces (2.7 km long);
* the Pyramids of Giza use the Great Pyramid (Khufu's).

Countries carry their current English short names (``Türkiye``, as the United
Nations have written it since 2022).
"""

from __future__ import annotations

import csv
import functools
import io
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from importlib import resources

__all__ = ["Place", "all_places", "display_name", "name_key", "place_for", "stand_in_places"]

_TABLE = "landmarks.csv"
_STAND_IN_TABLE = "landmarks44.csv"
_COLUMNS = ["folder", "name", "city", "country", "latitude", "longitude"]
_NUMERIC_PREFIX = re.compile(r"^\d+\.")


@dataclass(frozen=True)
class Place:
    """One landmark and where it is.

    Attributes:
        folder: The class folder in the dataset, e.g. ``"16.Eiffel_Tower"``.
        name: The name a person would write, e.g. ``"Eiffel Tower"``.
        city: City or region, e.g. ``"Paris"`` or ``"Maui, Hawaii"``.
        country: Country, e.g. ``"France"``.
        latitude: Degrees north (negative south), WGS84; ``None`` for a landmark added
            with a city and country but no coordinates (every landmark of the table has them).
        longitude: Degrees east (negative west), WGS84; ``None`` with ``latitude``.
    """

    folder: str
    name: str
    city: str
    country: str
    latitude: float | None
    longitude: float | None

    @property
    def where(self) -> str:
        """City (or region) and country, e.g. ``"San Francisco, United States"``."""
        return ", ".join(part for part in (self.city, self.country) if part)

    @property
    def map_url(self) -> str:
        """A link to the landmark on OpenStreetMap, with a marker, at street zoom; without
        coordinates, OpenStreetMap's search for its name, city and country."""
        if self.latitude is None or self.longitude is None:
            query = ", ".join(part for part in (self.name, self.where) if part)
            return f"https://www.openstreetmap.org/search?query={urllib.parse.quote(query)}"
        lat, lon = f"{self.latitude:.4f}", f"{self.longitude:.4f}"
        return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=14/{lat}/{lon}"


def display_name(folder: str) -> str:
    """Turn a class folder name into a readable name.

    The rule works for any dataset with one folder per class: a leading
    numeric prefix such as ``09.`` is dropped and underscores become spaces.
    It does not consult the landmark table.

    Args:
        folder: A class folder name, e.g. ``"09.Golden_Gate_Bridge"``.

    Returns:
        The readable name, e.g. ``"Golden Gate Bridge"``.

    Raises:
        ValueError: If ``folder`` is empty or leaves nothing after the rule.

    Examples:
        >>> display_name("09.Golden_Gate_Bridge")
        'Golden Gate Bridge'
        >>> display_name("Faces_easy")
        'Faces easy'
    """
    name = _NUMERIC_PREFIX.sub("", folder).replace("_", " ").strip()
    if not name:
        raise ValueError(f"cannot make a display name from folder name {folder!r}")
    return name


@functools.cache
def all_places() -> tuple[Place, ...]:
    """All 50 landmarks, in the order of their class folders.

    The table is read once from the package and then cached.

    Returns:
        One :class:`Place` per landmark, ``00.Haleakala_National_Park`` first.

    Raises:
        ValueError: If the packaged table does not have the expected columns.
    """
    return _read_table(_TABLE)


@functools.cache
def stand_in_places() -> tuple[Place, ...]:
    """The 44 classes of the stand-in dataset ``landmarks44``, in folder order.

    Returns:
        One :class:`Place` per class, ``00.anıtkabir`` first.

    Raises:
        ValueError: If the packaged table does not have the expected columns.
    """
    return _read_table(_STAND_IN_TABLE)


def _read_table(table: str) -> tuple[Place, ...]:
    """The places of one packaged table, sorted by folder."""
    text = resources.files("landmarklib").joinpath(table).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != _COLUMNS:
        raise ValueError(f"{table}: expected columns {_COLUMNS}, found {reader.fieldnames}")
    places = [
        Place(
            folder=row["folder"],
            name=row["name"],
            city=row["city"],
            country=row["country"],
            latitude=float(row["latitude"]),
            longitude=float(row["longitude"]),
        )
        for row in reader
    ]
    return tuple(sorted(places, key=lambda place: place.folder))


def place_for(class_name_or_folder: str) -> Place | None:
    """Find a landmark by folder, plain display name or table name.

    The match ignores case and surrounding spaces, so ``"16.Eiffel_Tower"``,
    ``"Eiffel Tower"`` and ``"eiffel tower"`` all find the Eiffel Tower. Both
    tables are searched, the 50 landmarks' first: ``"12.eiffel_tower"`` (a
    stand-in folder) finds the stand-in row, ``"Eiffel Tower"`` the course's.

    Args:
        class_name_or_folder: A class folder name, the :func:`display_name`
            of one, or the landmark's name from the table.

    Returns:
        The matching :class:`Place`, or ``None`` for a class this table does
        not know (for example one from another dataset).
    """
    return _lookup().get(name_key(class_name_or_folder))


def name_key(text: str) -> str:
    """A landmark's name as compared: Unicode compatibility-normalised (NFKC) and case folded,
    invisible format characters (zero-width spaces, direction marks, soft hyphens) dropped,
    runs of white space as one space, outer ones dropped (an approximation of Unicode's
    NFKC_Casefold, UAX #31, for matching names).

    Two spellings of one name compare equal: ``"Haleakalā"`` typed on a Mac (``a`` and a
    combining macron, NFD) and elsewhere (one character, NFC), full-width ``"Ｔｏｗｅｒ"`` and
    ``"Tower"``, ``"GOLDEN  GATE "`` and ``"golden gate"``.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cf").split())


@functools.cache
def _lookup() -> dict[str, Place]:
    """Map every accepted spelling of each landmark to its place (the 50 landmarks first)."""
    index: dict[str, Place] = {}
    for place in all_places() + stand_in_places():
        for spelling in (place.folder, display_name(place.folder), place.name):
            index.setdefault(name_key(spelling), place)
    return index

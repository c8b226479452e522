"""The report of a tagging run (:func:`landmarklib.tagging.tag_paths`): a CSV table, GeoJSON
and an HTML map.

Each is written atomically (:func:`landmarklib.files.write_text`), one row per photo
sorted by file, with the columns of :data:`COLUMNS`.

* CSV by Python's :mod:`csv` module (spreadsheets open it; UTF-8 with a byte-order mark, so that
  Excel reads accents right).
* GeoJSON (RFC 7946) by :mod:`json`: a ``FeatureCollection`` with one ``Feature`` per photo, a
  ``Point`` geometry (``[longitude, latitude]``) where the photo has a place and ``null`` where
  not (RFC 7946, 3.2), the columns as ``properties``. The format is plain JSON objects; the
  ``geojson`` package would add validation classes and one more dependency, no other output.
* The map by folium (Leaflet): one marker per landmark, its popup giving the number of photos
  tagged there and up to :data:`THUMBNAILS` thumbnails (JPEG, 96 px, embedded as base64 so the
  map is one file). Photos tagged in this run and in an earlier one (``"already tagged"``) are
  shown. Viewing it needs the internet, as any folium map does: Leaflet comes from a CDN and the
  map tiles from OpenStreetMap.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

from landmarklib.files import write_text
from landmarklib.images import ImageError, open_image
from landmarklib.tagging import ALREADY_TAGGED, TAGGED, TagRow

#: The report's columns: probability is the top-1 probability (0-1), coordinates in degrees.
COLUMNS = ("file", "status", "landmark", "probability", "latitude", "longitude", "reason")

#: Most thumbnails in one marker's popup, and their size (pixels, longest side).
THUMBNAILS = 12
THUMBNAIL_PX = 96


def report_rows(rows: Iterable[TagRow]) -> list[dict]:
    """The rows as dictionaries of :data:`COLUMNS`, sorted by file; probability rounded to
    4 decimals."""
    table = []
    for row in sorted(rows, key=lambda row: row.file):
        record = {column: getattr(row, column) for column in COLUMNS}
        if record["probability"] is not None:
            record["probability"] = round(record["probability"], 4)
        table.append(record)
    return table


def write_csv(rows: Iterable[TagRow], path: str | os.PathLike) -> Path:
    """Write the report as CSV (header :data:`COLUMNS`; empty cells for missing values).

    Returns:
        ``path``. Raises OSError if it cannot be written.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in record.items()}
                     for record in report_rows(rows))
    return write_text(path, "\ufeff" + buffer.getvalue())


def geojson(rows: Iterable[TagRow]) -> dict:
    """The report as a GeoJSON ``FeatureCollection`` (a dict ready for :func:`json.dumps`)."""
    features = []
    for record in report_rows(rows):
        located = record["latitude"] is not None and record["longitude"] is not None
        geometry = ({"type": "Point", "coordinates": [record["longitude"], record["latitude"]]}
                    if located else None)
        features.append({"type": "Feature", "geometry": geometry, "properties": record})
    return {"type": "FeatureCollection", "features": features}


def write_geojson(rows: Iterable[TagRow], path: str | os.PathLike) -> Path:
    """Write :func:`geojson` to ``path`` (UTF-8). Returns ``path``; raises OSError."""
    text = json.dumps(geojson(rows), ensure_ascii=False, indent=1)
    return write_text(path, text + "\n")


@dataclasses.dataclass
class MapMarker:
    """One landmark on the map: where, and which photos were tagged with it."""

    landmark: str
    latitude: float
    longitude: float
    files: list[str]


def map_markers(rows: Iterable[TagRow]) -> list[MapMarker]:
    """One :class:`MapMarker` per landmark with a place, for the photos tagged (in this run or an
    earlier one), sorted by landmark."""
    markers: dict[tuple, MapMarker] = {}
    for row in sorted(rows, key=lambda row: row.file):
        if row.status in (TAGGED, ALREADY_TAGGED) and row.latitude is not None \
                and row.longitude is not None:
            key = (row.landmark, row.latitude, row.longitude)
            markers.setdefault(key, MapMarker(*key, files=[])).files.append(row.file)
    return sorted(markers.values(), key=lambda marker: marker.landmark)


def tag_map(rows: Iterable[TagRow], thumbnails: int = THUMBNAILS):
    """A folium map of the tagged photos: a marker per landmark (tooltip: name and count; popup:
    name, count and the thumbnails of the first ``thumbnails`` photos that can be read).

    Returns:
        A ``folium.Map``; in a notebook it shows itself, ``write_map`` saves it.
    """
    import folium  # imported here: only the map needs it

    markers = map_markers(rows)
    if len(markers) == 1:
        world = folium.Map([markers[0].latitude, markers[0].longitude], zoom_start=12,
                           control_scale=True)
    else:
        world = folium.Map([20, 0], zoom_start=2, control_scale=True)
    for marker in markers:
        count = f"{len(marker.files)} photo{'s' if len(marker.files) != 1 else ''}"
        images: list[str] = []
        for file in marker.files:  # the first photos that can still be read
            if len(images) == thumbnails:
                break
            images += filter(None, [_thumbnail_html(file)])
        popup = (f"<div class='landmark-popup'><b>{html.escape(marker.landmark)}</b><br>{count}"
                 f"<br>{''.join(images)}</div>")
        folium.Marker([marker.latitude, marker.longitude],
                      tooltip=f"{marker.landmark}: {count}",
                      popup=folium.Popup(popup, max_width=4 * (THUMBNAIL_PX + 6))).add_to(world)
    if len(markers) > 1:
        world.fit_bounds([[min(m.latitude for m in markers), min(m.longitude for m in markers)],
                          [max(m.latitude for m in markers), max(m.longitude for m in markers)]],
                         padding=(30, 30))
    return world


def write_map(rows: Iterable[TagRow], path: str | os.PathLike,
              thumbnails: int = THUMBNAILS) -> Path:
    """Write :func:`tag_map` as one HTML file. Returns ``path``; raises OSError."""
    return write_text(path, tag_map(rows, thumbnails).get_root().render())


def _thumbnail_html(file: str) -> str:
    """An ``<img>`` with the photo as a base64 JPEG of at most :data:`THUMBNAIL_PX` pixels
    (the photo is only read); ``""`` if it cannot be read any more."""
    try:
        image = open_image(file, short_side=THUMBNAIL_PX)
    except (ImageError, OSError):
        return ""
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"<img class='landmark-thumbnail' src='data:image/jpeg;base64,{data}' "
            f"title='{html.escape(Path(file).name, quote=True)}' style='margin:2px'>")

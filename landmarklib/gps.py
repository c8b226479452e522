"""GPS coordinates as text, in XMP's GPSCoordinate form (XMP Specification Part 2, Exif
schema): ``"DDD,MM.mmmmmmK"`` (degrees, decimal minutes, hemisphere), which
:mod:`landmarklib.sidecars` writes, and the other forms photo managers write, which it reads.
"""

from __future__ import annotations

import re

__all__ = ["gps_coordinate", "parse_gps_coordinate"]

_COORDINATE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?\s*([NSEWnsew])\s*$")


def gps_coordinate(degrees: float, axis: str) -> str:
    """Degrees as XMP's GPSCoordinate text, ``"DDD,MM.mmmmmmK"`` (XMP Specification Part 2,
    Exif schema): ``gps_coordinate(-33.8523, "latitude") == "33,51.138000S"``.

    Args:
        degrees: signed decimal degrees (north and east positive).
        axis: ``"latitude"`` (hemisphere N/S, at most 90) or ``"longitude"`` (E/W, at most 180).

    Raises:
        ValueError: out of range, not finite, or an unknown axis.
    """
    limits = {"latitude": (90, "N", "S"), "longitude": (180, "E", "W")}
    if axis not in limits:
        raise ValueError(f"axis must be 'latitude' or 'longitude', got {axis!r}")
    limit, positive, negative = limits[axis]
    if not -limit <= degrees <= limit:  # also rejects NaN
        raise ValueError(f"{axis} {degrees!r} is not between -{limit} and {limit} degrees")
    whole, minutes = divmod(round(abs(degrees) * 60 * 1_000_000), 60 * 1_000_000)
    return f"{whole},{minutes / 1_000_000:09.6f}{positive if degrees >= 0 else negative}"


def parse_gps_coordinate(text: str) -> float:
    """Signed decimal degrees from XMP GPSCoordinate text: ``"DDD,MM,SSK"``, ``"DDD,MM.mmK"``
    or ``"DDD.dddK"`` (K one of N, S, E, W).

    Raises:
        ValueError: any other text.
    """
    match = _COORDINATE.match(text)
    if match is None:
        raise ValueError(f"not an XMP GPS coordinate: {text!r}")
    degrees, minutes, seconds, hemisphere = match.groups()
    value = float(degrees) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
    return -value if hemisphere.upper() in "SW" else value

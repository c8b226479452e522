"""Tests for landmarklib.gps: XMP's GPS coordinate text, written and read."""

from __future__ import annotations

import random

import pytest

from landmarklib import gps


@pytest.mark.parametrize(
    ("degrees", "axis", "text"),
    [
        (48.8584, "latitude", "48,51.504000N"),
        (2.2945, "longitude", "2,17.670000E"),
        (-33.8523, "latitude", "33,51.138000S"),
        (-122.4783, "longitude", "122,28.698000W"),
        (0.0, "latitude", "0,00.000000N"),
        (-90.0, "latitude", "90,00.000000S"),
        (180.0, "longitude", "180,00.000000E"),
        (10.9999999999, "latitude", "11,00.000000N"),  # rounding carries into the degrees
    ],
)
def test_gps_coordinate(degrees, axis, text):
    assert gps.gps_coordinate(degrees, axis) == text
    assert gps.parse_gps_coordinate(text) == pytest.approx(round(degrees, 8), abs=1e-9)


def test_gps_coordinate_round_trips_to_a_micro_degree():
    rng = random.Random(0)
    for _ in range(2000):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        assert gps.parse_gps_coordinate(gps.gps_coordinate(lat, "latitude")) == \
            pytest.approx(lat, abs=1e-6)
        assert gps.parse_gps_coordinate(gps.gps_coordinate(lon, "longitude")) == \
            pytest.approx(lon, abs=1e-6)


@pytest.mark.parametrize(("degrees", "axis"), [(90.5, "latitude"), (-181, "longitude"),
                                               (float("nan"), "latitude"), (1.0, "altitude")])
def test_gps_coordinate_rejects(degrees, axis):
    with pytest.raises(ValueError):
        gps.gps_coordinate(degrees, axis)


@pytest.mark.parametrize(
    ("text", "degrees"),
    [("48,51,30.24N", 48.8584), ("48,51.504N", 48.8584), ("48.8584N", 48.8584),
     ("122,28,41.88W", -122.4783), (" 33,51.138s ", -33.8523)],
)
def test_parse_gps_coordinate_forms(text, degrees):
    assert gps.parse_gps_coordinate(text) == pytest.approx(degrees, abs=1e-9)


@pytest.mark.parametrize("text", ["", "48.8584", "N", "48,51.5X", "-48,51.5N"])
def test_parse_gps_coordinate_rejects(text):
    with pytest.raises(ValueError, match="not an XMP GPS coordinate"):
        gps.parse_gps_coordinate(text)

"""Tests for landmarklib.sidecars: XMP sidecars written with exiv2, read back with ExifTool."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import unicodedata

import pytest

from landmarklib import sidecars
from landmarklib.places import Place, all_places, place_for, stand_in_places
from landmarklib.sidecars import SidecarError, Tag, read_sidecar, sidecar_path, write_sidecar

WHEN = datetime.datetime(2024, 5, 17, 14, 30, 5, tzinfo=datetime.timezone.utc)
MODEL = "tiny_model.pt@sha256:0123456789ab"

#: A sidecar as digiKam or darktable leave it: a rating, a title, keywords, an edit history.
EXISTING = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="4" darktable:xmp_version="5">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>paris</rdf:li></rdf:Bag></dc:subject>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Ünïcode title</rdf:li></rdf:Alt></dc:title>
   <darktable:history><rdf:Seq>
    <rdf:li darktable:operation="exposure" darktable:enabled="1"/>
   </rdf:Seq></darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def tag_for(folder: str, probability: float = 0.9, model: str = MODEL) -> Tag:
    place = place_for(folder)
    return Tag(place.name, place.folder, probability, model, place, WHEN)


# ------------------------------------------------------------------------------------ naming


@pytest.mark.parametrize(
    ("photo", "naming", "expected"),
    [
        ("trip/IMG_1.JPG", "photo.jpg.xmp", "trip/IMG_1.JPG.xmp"),
        ("trip/IMG_1.JPG", "photo.xmp", "trip/IMG_1.xmp"),
        ("a.b/été 1.tar.jpeg", "photo.jpg.xmp", "a.b/été 1.tar.jpeg.xmp"),
        ("a.b/été 1.tar.jpeg", "photo.xmp", "a.b/été 1.tar.xmp"),
    ],
)
def test_sidecar_path(photo, naming, expected):
    assert sidecar_path(photo, naming).as_posix() == expected


def test_default_naming_and_unknown_naming():
    assert sidecars.DEFAULT_NAMING == "photo.jpg.xmp"
    assert sidecars.DEFAULT_NAMING in sidecars.NAMINGS
    with pytest.raises(ValueError, match="photo.jpg.xmp, photo.xmp"):
        sidecar_path("a.jpg", "lightroom")


# ------------------------------------------------------------------- written, read by ExifTool


def test_every_place_round_trips_through_exiftool(tmp_path, exiftool):
    """All 94 places written, then read by ExifTool: coordinates to 1e-5 degrees, keywords."""
    written = {}
    for place in all_places() + stand_in_places():
        path = tmp_path / f"{place.folder}.jpg.xmp"
        written[path] = place
        write_sidecar(path, Tag(place.name, place.folder, 0.875, MODEL, place, WHEN))
    found = exiftool(written)
    assert len(found) == 94
    for path, place in written.items():
        tags = found[path]
        assert tags["XMP-exif:GPSLatitude"] == pytest.approx(place.latitude, abs=1e-5)
        assert tags["XMP-exif:GPSLongitude"] == pytest.approx(place.longitude, abs=1e-5)
        assert tags["Composite:GPSPosition"]  # ExifTool combined the pair: it understood both
        assert tags["XMP-photoshop:City"] == place.city
        assert tags["XMP-photoshop:Country"] == place.country
        assert tags["XMP-iptcCore:Location"] == place.name
        assert tags["XMP-iptcExt:LocationShownLocationName"] == place.name
        assert tags["XMP-iptcExt:LocationShownGPSLatitude"] == pytest.approx(place.latitude,
                                                                             abs=1e-5)
        assert tags["XMP-dc:Subject"] == [place.name, place.city, place.country]
        assert tags["XMP-lr:HierarchicalSubject"] == \
            f"Places|{place.country}|{place.city}|{place.name}"
        assert tags["XMP-landmarklib:Model"] == MODEL
        assert tags["XMP-landmarklib:ClassFolder"] == place.folder
        assert tags["XMP-landmarklib:Probability"] == pytest.approx(0.875)
        assert tags["XMP-landmarklib:TaggedAt"] == "2024:05:17 14:30:05+00:00"
        assert tags["XMP-exif:GPSVersionID"] == "2.2.0.0"


def test_read_sidecar_reads_what_was_written(tmp_path):
    path = write_sidecar(tmp_path / "a.jpg.xmp", tag_for("37.sydney", 0.71234))
    info = read_sidecar(path)
    assert info.has_location
    assert (info.latitude, info.longitude) == pytest.approx((-33.8523, 151.2108), abs=1e-9)
    assert (info.city, info.country) == ("Sydney", "Australia")
    assert info.keywords == ("Sydney Harbour Bridge", "Sydney", "Australia")
    assert (info.model, info.folder, info.landmark) == (MODEL, "37.sydney",
                                                        "Sydney Harbour Bridge")
    assert info.probability == pytest.approx(0.7123)
    assert info.tagged_at == "2024-05-17T14:30:05+00:00"


def test_merge_keeps_rating_title_history_and_keywords(tmp_path, exiftool):
    path = tmp_path / "IMG_1.jpg.xmp"
    path.write_text(EXISTING, encoding="utf-8")
    write_sidecar(path, tag_for("16.Eiffel_Tower"))
    tags = exiftool([path])[path]
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-dc:Title"] == "Ünïcode title"
    assert tags["XMP-darktable:HistoryOperation"] == "exposure"
    # "paris" was there (another case): kept, and "Paris" is not added a second time.
    assert tags["XMP-dc:Subject"] == ["holiday", "paris", "Eiffel Tower", "France"]
    assert tags["XMP-exif:GPSLatitude"] == pytest.approx(48.8584, abs=1e-5)


def test_a_new_answer_replaces_ours_and_keeps_theirs(tmp_path, exiftool):
    path = tmp_path / "IMG_1.jpg.xmp"
    path.write_text(EXISTING, encoding="utf-8")
    write_sidecar(path, tag_for("16.Eiffel_Tower", model="old-model"))
    write_sidecar(path, tag_for("37.sydney", model="new-model"))
    tags = exiftool([path])[path]
    assert tags["XMP-dc:Subject"] == ["holiday", "paris", "Sydney Harbour Bridge", "Sydney",
                                      "Australia"]
    assert tags["XMP-lr:HierarchicalSubject"] == "Places|Australia|Sydney|Sydney Harbour Bridge"
    assert tags["XMP-exif:GPSLatitude"] == pytest.approx(-33.8523, abs=1e-5)
    assert tags["XMP-landmarklib:Model"] == "new-model"
    assert tags["XMP-xmp:Rating"] == 4


def test_class_without_a_place_gets_keywords_only(tmp_path, exiftool):
    path = tmp_path / "IMG_2.jpg.xmp"
    write_sidecar(path, tag_for("16.Eiffel_Tower", model="old-model"))
    write_sidecar(path, Tag("Faces easy", "Faces_easy", 0.8, MODEL, None, WHEN))
    tags = exiftool([path])[path]
    assert tags["XMP-dc:Subject"] == "Faces easy"  # ExifTool gives one item as a string
    assert tags["XMP-lr:HierarchicalSubject"] == "Places|Faces easy"
    assert not [key for key in tags if "GPS" in key or "City" in key or "Country" in key]
    info = read_sidecar(path)
    assert not info.has_location and info.latitude is None and info.folder == "Faces_easy"


def test_a_place_without_coordinates_gets_its_city_and_country_only(tmp_path, exiftool):
    from landmarklib.places import Place

    church = Place("St Mary's", "St Mary's", "Ely", "United Kingdom", None, None)
    hill = Place("Kite Hill", "Kite Hill", "", "United Kingdom", None, None)  # no city
    path, other = tmp_path / "IMG_3.jpg.xmp", tmp_path / "IMG_4.jpg.xmp"
    write_sidecar(path, tag_for("16.Eiffel_Tower", model="old-model"))  # GPS to replace
    write_sidecar(path, Tag(church.name, church.name, 0.8, MODEL, church, WHEN))
    write_sidecar(other, Tag(hill.name, hill.name, 0.8, MODEL, hill, WHEN))
    tags, hill_tags = exiftool([path])[path], exiftool([other])[other]
    assert not [key for key in [*tags, *hill_tags] if "GPS" in key]
    assert (tags["XMP-photoshop:City"], tags["XMP-photoshop:Country"]) == ("Ely",
                                                                          "United Kingdom")
    assert tags["XMP-iptcCore:Location"] == "St Mary's"
    assert tags["XMP-dc:Subject"] == ["St Mary's", "Ely", "United Kingdom"]
    assert tags["XMP-lr:HierarchicalSubject"] == "Places|United Kingdom|Ely|St Mary's"
    assert "XMP-photoshop:City" not in hill_tags  # nothing empty written
    assert hill_tags["XMP-dc:Subject"] == ["Kite Hill", "United Kingdom"]
    assert hill_tags["XMP-lr:HierarchicalSubject"] == "Places|United Kingdom|Kite Hill"
    info = read_sidecar(path)
    assert info.has_location and info.latitude is None and info.city == "Ely"
    assert church.map_url == ("https://www.openstreetmap.org/search?query="
                              "St%20Mary%27s%2C%20Ely%2C%20United%20Kingdom")


def test_digikam_tags_list_is_extended_only_when_present(tmp_path, exiftool):
    path = tmp_path / "dk.jpg.xmp"
    path.write_text(EXISTING.replace(
        'xmp:Rating="4"', 'xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmp:Rating="4"').replace(
        "<dc:subject>", "<digiKam:TagsList><rdf:Seq><rdf:li>People/Ann</rdf:li></rdf:Seq>"
                        "</digiKam:TagsList><dc:subject>"), encoding="utf-8")
    write_sidecar(path, tag_for("12.eiffel_tower"))
    plain = write_sidecar(tmp_path / "plain.jpg.xmp", tag_for("12.eiffel_tower"))
    tags = exiftool([path, plain])
    assert tags[path]["XMP-digiKam:TagsList"] == ["People/Ann", "Places/France/Paris/Eiffel Tower"]
    assert "XMP-digiKam:TagsList" not in tags[plain]


def test_location_from_elsewhere_is_seen(tmp_path):
    """A sidecar located by the user or another program: GPS in DMS form, or a city alone."""
    gps = tmp_path / "gps.xmp"
    gps.write_text(EXISTING.replace(
        'xmp:Rating="4"', 'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmp:Rating="4" '
        'exif:GPSLatitude="48,51,30.24N" exif:GPSLongitude="2,17,40.2E"'), encoding="utf-8")
    info = read_sidecar(gps)
    assert info.has_location and info.model is None
    assert (info.latitude, info.longitude) == pytest.approx((48.8584, 2.2945), abs=1e-6)
    city = tmp_path / "city.xmp"
    city.write_text(EXISTING.replace(
        'xmp:Rating="4"', 'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'xmp:Rating="4" photoshop:City="Lyon"'), encoding="utf-8")
    info = read_sidecar(city)
    assert info.has_location and info.latitude is None and info.city == "Lyon"
    plain = tmp_path / "plain.xmp"
    plain.write_text(EXISTING, encoding="utf-8")
    assert not read_sidecar(plain).has_location


@pytest.mark.parametrize("content", [EXISTING[:600], "", "not xml at all", "<x:xmpmeta>"])
def test_damaged_sidecar_is_an_error_and_left_alone(tmp_path, content):
    path = tmp_path / "bad.jpg.xmp"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SidecarError, match="bad.jpg.xmp: is not an XMP sidecar exiv2 can read"):
        read_sidecar(path)
    with pytest.raises(SidecarError):
        write_sidecar(path, tag_for("16.Eiffel_Tower"))
    assert path.read_text(encoding="utf-8") == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jpg.xmp"]


def test_a_failed_write_leaves_the_old_sidecar_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "IMG_3.jpg.xmp"
    path.write_text(EXISTING, encoding="utf-8")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_sidecar(path, tag_for("16.Eiffel_Tower"))
    assert path.read_text(encoding="utf-8") == EXISTING
    assert [p.name for p in tmp_path.iterdir()] == ["IMG_3.jpg.xmp"]


def test_unicode_paths(tmp_path, exiftool):
    folder = tmp_path / "Türkiye 2023 ☀"
    folder.mkdir()
    path = write_sidecar(folder / "İstanbul köprü.jpg.xmp", tag_for("05.boğaziçi_köprüsü"))
    info = read_sidecar(path)
    assert info.landmark == "Bosphorus Bridge" and info.country == "Türkiye"
    tags = exiftool([path])[path]
    assert tags["XMP-photoshop:Country"] == "Türkiye"
    assert tags["XMP-exif:GPSLongitude"] == pytest.approx(29.0342, abs=1e-5)


def test_the_location_digest_tells_ours_from_an_edit(tmp_path, exiftool):
    """Another program that rewrites the sidecar (ExifTool here) but not its location leaves
    it ours; an edit to any location property, or its removal, makes it the user's."""
    ours = write_sidecar(tmp_path / "ours.jpg.xmp", tag_for("37.sydney"))
    assert read_sidecar(ours).location_unedited is True
    edits = {"rating.xmp": ["-XMP-xmp:Rating=2"], "city.xmp": ["-XMP-photoshop:City=Manly"],
             "gps.xmp": ["-XMP-exif:GPSLatitude=", "-XMP-exif:GPSLongitude="],
             "state.xmp": ["-XMP-photoshop:State=New South Wales"],
             "shown.xmp": ["-XMP-iptcExt:LocationShownCity=Manly"]}
    for name, arguments in edits.items():
        shutil.copy(ours, tmp_path / name)
        subprocess.run([shutil.which("exiftool"), "-overwrite_original", *arguments,
                        str(tmp_path / name)], check=True, capture_output=True)
        info = read_sidecar(tmp_path / name)
        assert info.location_unedited is (name == "rating.xmp"), name
    assert exiftool([tmp_path / "rating.xmp"])[tmp_path / "rating.xmp"]["XMP-xmp:Rating"] == 2
    write_sidecar(tmp_path / "city.xmp", tag_for("16.Eiffel_Tower"))  # a new answer: ours again
    assert read_sidecar(tmp_path / "city.xmp").location_unedited is True
    code = tmp_path / "code.xmp"  # a country code (digiKam, Lightroom fill it) is a location
    shutil.copy(ours, code)
    subprocess.run([shutil.which("exiftool"), "-overwrite_original", "-XMP-iptcCore:CountryCode=AU",
                    str(code)], check=True, capture_output=True)
    assert read_sidecar(code).location_unedited is False
    # The same location written another way is unedited: degrees, minutes and seconds; NFD.
    dms = tmp_path / "dms.xmp"
    dms.write_text(ours.read_text(encoding="utf-8").replace('"33,51.138000S"', '"33,51,8.28S"'),
                   encoding="utf-8")
    assert read_sidecar(dms).location_unedited is True
    cologne = Place("dom", "Kölner Dom", "Köln", "Deutschland", 50.9413, 6.9583)
    nfd = write_sidecar(tmp_path / "nfd.xmp", Tag("Kölner Dom", "dom", 0.9, MODEL, cologne, WHEN))
    nfd.write_text(nfd.read_text(encoding="utf-8").replace(
        "Köln", unicodedata.normalize("NFD", "Köln")), encoding="utf-8")
    assert "Ko\u0308ln" in nfd.read_text(encoding="utf-8")
    assert read_sidecar(nfd).location_unedited is True
    older = tmp_path / "older.xmp"  # written before LocationDigest existed
    older.write_text(EXISTING, encoding="utf-8")
    assert read_sidecar(older).location_unedited is None

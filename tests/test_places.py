"""Tests for landmarklib.places: the landmark table, display names and lookups."""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from pathlib import Path

import pytest

from landmarklib.places import Place, all_places, display_name, place_for, stand_in_places

#: The stand-in dataset, next to the repository (../shared/data/landmarks44) where it is.
LANDMARKS44 = Path(__file__).resolve().parents[2] / "shared" / "data" / "landmarks44"

FOLDERS = [
    "00.Haleakala_National_Park", "01.Mount_Rainier_National_Park", "02.Ljubljana_Castle",
    "03.Dead_Sea", "04.Wroclaws_Dwarves", "05.London_Olympic_Stadium", "06.Niagara_Falls",
    "07.Stonehenge", "08.Grand_Canyon", "09.Golden_Gate_Bridge", "10.Edinburgh_Castle",
    "11.Mount_Rushmore_National_Memorial", "12.Kantanagar_Temple", "13.Yellowstone_National_Park",
    "14.Terminal_Tower", "15.Central_Park", "16.Eiffel_Tower", "17.Changdeokgung",
    "18.Delicate_Arch", "19.Vienna_City_Hall", "20.Matterhorn", "21.Taj_Mahal",
    "22.Moscow_Raceway", "23.Externsteine", "24.Soreq_Cave", "25.Banff_National_Park",
    "26.Pont_du_Gard", "27.Seattle_Japanese_Garden", "28.Sydney_Harbour_Bridge",
    "29.Petronas_Towers", "30.Brooklyn_Bridge", "31.Washington_Monument", "32.Hanging_Temple",
    "33.Sydney_Opera_House", "34.Great_Barrier_Reef", "35.Monumento_a_la_Revolucion",
    "36.Badlands_National_Park", "37.Atomium", "38.Forth_Bridge", "39.Gateway_of_India",
    "40.Stockholm_City_Hall", "41.Machu_Picchu", "42.Death_Valley_National_Park",
    "43.Gullfoss_Falls", "44.Trevi_Fountain", "45.Temple_of_Heaven", "46.Great_Wall_of_China",
    "47.Prague_Astronomical_Clock", "48.Whitby_Abbey", "49.Temple_of_Olympian_Zeus"
]


# --- the table -------------------------------------------------------------


def test_fifty_places_in_folder_order():
    places = all_places()
    assert len(places) == 50
    assert [p.folder for p in places] == FOLDERS


def test_all_places_is_cached_and_immutable():
    assert all_places() is all_places()
    with pytest.raises(dataclasses.FrozenInstanceError):
        all_places()[0].name = "Somewhere else"  # type: ignore[misc]


def test_names_unique_and_fields_filled():
    places = all_places()
    assert len({p.name for p in places}) == 50
    for p in places:
        assert p.name and p.city and p.country, p


def test_coordinates_in_range():
    for p in all_places():
        assert isinstance(p.latitude, float) and isinstance(p.longitude, float)
        assert -90 <= p.latitude <= 90, p
        assert -180 <= p.longitude <= 180, p


def test_table_name_matches_the_folder_up_to_spelling():
    """The nicer table name must still be the same landmark as the folder."""

    def plain(text: str) -> str:  # "Wrocław's" -> "wroclaws"
        text = unicodedata.normalize("NFKD", text.lower().replace("ł", "l"))
        return "".join(ch for ch in text if ch.isascii() and ch.isalnum())

    for p in all_places():
        assert plain(p.name) == plain(display_name(p.folder)), p


@pytest.mark.parametrize(
    ("folder", "country", "lat", "lon"),
    [
        ("16.Eiffel_Tower", "France", 48.858, 2.294),
        ("09.Golden_Gate_Bridge", "United States", 37.820, -122.478),
        ("28.Sydney_Harbour_Bridge", "Australia", -33.852, 151.211),
        ("41.Machu_Picchu", "Peru", -13.163, -72.545),
        ("24.Soreq_Cave", "Israel", 31.756, 35.023),
        ("12.Kantanagar_Temple", "Bangladesh", 25.790, 88.667),
    ],
)
def test_known_facts(folder, country, lat, lon):
    place = place_for(folder)
    assert place is not None
    assert place.country == country
    assert place.latitude == pytest.approx(lat, abs=0.01)
    assert place.longitude == pytest.approx(lon, abs=0.01)


def test_hemispheres():
    """Americas west of Greenwich, Australia and Peru south of the equator."""
    by_country = {}
    for p in all_places():
        by_country.setdefault(p.country, []).append(p)
    for country in ("United States", "Canada", "Mexico", "Peru"):
        assert all(p.longitude < 0 for p in by_country[country]), country
    for country in ("Australia", "Peru"):
        assert all(p.latitude < 0 for p in by_country[country]), country
    north = [p for c, ps in by_country.items() if c not in ("Australia", "Peru") for p in ps]
    assert all(p.latitude > 0 for p in north)


def test_where_and_map_url():
    gg = place_for("Golden Gate Bridge")
    assert gg is not None
    assert gg.where == "San Francisco, United States"
    assert gg.map_url.startswith("https://www.openstreetmap.org/?")
    assert "mlat=37.8199" in gg.map_url and "mlon=-122.4783" in gg.map_url
    assert gg.map_url.endswith("#map=14/37.8199/-122.4783")
    assert Place("x", "X", "", "Nowhere", 0.0, 0.0).where == "Nowhere"


# --- display_name ----------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("09.Golden_Gate_Bridge", "Golden Gate Bridge"),
        ("05.boğaziçi_köprüsü", "boğaziçi köprüsü"),
        ("Faces_easy", "Faces easy"),
        ("04.Wroclaws_Dwarves", "Wroclaws Dwarves"),
        ("35.Monumento_a_la_Revolucion", "Monumento a la Revolucion"),
        ("Atomium", "Atomium"),
        ("123.Some_Class", "Some Class"),
    ],
)
def test_display_name(folder, expected):
    assert display_name(folder) == expected


@pytest.mark.parametrize("bad", ["", "07.", "__"])
def test_display_name_rejects_empty(bad):
    with pytest.raises(ValueError):
        display_name(bad)


# --- place_for -------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "16.Eiffel_Tower",
        "Eiffel Tower",
        "eiffel tower",
        "EIFFEL TOWER",
        "16.eiffel_tower",
        "  Eiffel Tower ",
    ],
)
def test_place_for_eiffel_tower(query):
    place = place_for(query)
    assert place is not None
    assert place.folder == "16.Eiffel_Tower"


def test_place_for_table_name_and_plain_name():
    # The table's nicer name and the plain display name find the same place.
    wroclaw = place_for("04.Wroclaws_Dwarves")
    assert wroclaw is not None
    assert place_for("Wrocław's Dwarves") is wroclaw
    assert place_for("Wroclaws Dwarves") is wroclaw
    assert place_for("monumento a la revolución").folder == "35.Monumento_a_la_Revolucion"
    assert place_for("Haleakalā National Park").folder == "00.Haleakala_National_Park"


def test_place_for_every_folder_and_name():
    for p in all_places():
        assert place_for(p.folder) is p
        assert place_for(p.name) is p
        assert place_for(display_name(p.folder)) is p


@pytest.mark.parametrize("unknown", ["Faces easy", "", "Eiffel", "99.Nowhere", "Ankara"])
def test_place_for_unknown(unknown):
    assert place_for(unknown) is None


# --- the stand-in classes of landmarks44 -------------------------------------

FOLDERS_44 = [
    "00.anıtkabir", "01.arc_de_triomphe", "02.ayasofya", "03.beylerbeyi_sarayi", "04.big_ben",
    "05.boğaziçi_köprüsü", "06.casa_loma", "07.castel_santangelo", "08.charlottenburg_palace",
    "09.colosseum", "10.dolmabahce", "11.dresden_frauenkirche", "12.eiffel_tower", "13.fsm",
    "14.galata_kulesi", "15.golden_gate", "16.independence_hall", "17.ishak_pasa_sarayi",
    "18.kapadokya", "19.kiz_kulesi", "20.leaning_tower_of_pisa", "21.machu_picchu",
    "22.milan_cathedral", "23.notre_dame_cathedral", "24.pamukkale", "25.pantheon", "26.pyramids",
    "27.reichstag", "28.sacre_coeur_basilica", "29.savior_on_blood_church",
    "30.st_basil_cathedral", "31.st_louis_cathedral", "32.st_paul_cathedral",
    "33.statue_of_liberty", "34.stephansdom", "35.suleymaniye", "36.sultanahmet", "37.sydney",
    "38.taj_mahal", "39.topkapi", "40.trevi_fountain", "41.tyn_church", "42.ulu_cami",
    "43.westminster_abbey"
]


def test_stand_in_table_has_the_44_folders_in_order():
    places = stand_in_places()
    assert [p.folder for p in places] == FOLDERS_44
    assert len({p.name for p in places}) == 44
    for p in places:
        assert p.name and p.city and p.country, p
        assert -90 <= p.latitude <= 90 and -180 <= p.longitude <= 180, p
        assert round(p.latitude, 4) == p.latitude and round(p.longitude, 4) == p.longitude, p


@pytest.mark.skipif(not LANDMARKS44.is_dir(), reason=f"{LANDMARKS44} is not on this machine")
@pytest.mark.parametrize("split", ["train", "test"])
def test_every_landmarks44_folder_has_a_place(split):
    folders = sorted(p.name for p in (LANDMARKS44 / split).iterdir() if p.is_dir())
    assert len(folders) == 44
    for folder in folders:  # as the file system spells it, and as a model names the class
        assert place_for(folder) is not None, folder
        assert place_for(display_name(folder)) is not None, folder


def test_every_stand_in_folder_and_name_finds_a_place():
    for p in stand_in_places():
        assert place_for(p.folder) is p
        for spelling in (display_name(p.folder), p.name):  # maybe the course's twin row
            found = place_for(spelling)
            assert (found.name, found.latitude, found.longitude) == (p.name, p.latitude,
                                                                     p.longitude), spelling


def test_decomposed_unicode_folder_names_are_found():
    """macOS file systems hand out names in NFD ("ı" stays, "ğ" splits into g + breve)."""
    folder = unicodedata.normalize("NFD", "05.boğaziçi_köprüsü")
    assert folder != "05.boğaziçi_köprüsü"
    assert place_for(folder).name == "Bosphorus Bridge"


def test_shared_landmarks_agree_between_the_tables():
    """Six landmarks are in both datasets: the same point, and the course's row wins by name."""
    course = {p.name: p for p in all_places()}
    shared = [p for p in stand_in_places() if p.name in course]
    assert sorted(p.name for p in shared) == [
        "Eiffel Tower", "Golden Gate Bridge", "Machu Picchu", "Sydney Harbour Bridge",
        "Taj Mahal", "Trevi Fountain"]
    for p in shared:
        twin = course[p.name]
        assert (p.latitude, p.longitude, p.country) == (twin.latitude, twin.longitude, twin.country)
        assert place_for(p.name) is twin
    assert place_for("12.eiffel_tower").folder == "12.eiffel_tower"


def _km(lat1, lon1, lat2, lon2) -> float:
    """Great-circle distance (haversine, Earth radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371 * math.asin(math.sqrt(a))


@pytest.mark.parametrize(
    ("folder", "country", "lat", "lon"),
    [  # rounded public coordinates, written down independently of the table
        ("12.eiffel_tower", "France", 48.858, 2.294),
        ("09.colosseum", "Italy", 41.890, 12.492),
        ("04.big_ben", "United Kingdom", 51.501, -0.125),
        ("33.statue_of_liberty", "United States", 40.689, -74.045),
        ("26.pyramids", "Egypt", 29.979, 31.134),
        ("37.sydney", "Australia", -33.852, 151.211),
        ("00.anıtkabir", "Türkiye", 39.925, 32.837),
        ("02.ayasofya", "Türkiye", 41.009, 28.980),
        ("30.st_basil_cathedral", "Russia", 55.753, 37.623),
        ("31.st_louis_cathedral", "United States", 29.958, -90.064),
    ],
)
def test_stand_in_known_facts(folder, country, lat, lon):
    place = place_for(folder)
    assert place.country == country
    assert _km(place.latitude, place.longitude, lat, lon) < 0.3, place


def test_istanbul_landmarks_are_in_istanbul():
    """Ten classes are in Istanbul: all within 15 km of Hagia Sophia, on both shores."""
    hagia_sophia = place_for("02.ayasofya")
    istanbul = [p for p in stand_in_places() if p.city == "Istanbul"]
    assert len(istanbul) == 10
    for p in istanbul:
        assert _km(p.latitude, p.longitude, hagia_sophia.latitude, hagia_sophia.longitude) < 15, p
    asian_shore = {p.name for p in istanbul if p.longitude > 29.02}
    assert {"Beylerbeyi Palace", "Fatih Sultan Mehmet Bridge"} <= asian_shore

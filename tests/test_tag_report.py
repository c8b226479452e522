"""Tests for landmarklib.tag_report: the CSV and GeoJSON reports and the map of a tagging run
(the library of photos and the stand-in model are test_tagging's)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from test_tagging import EXPECTED, make_library, run

from landmarklib import tag_report


@pytest.fixture
def library(tmp_path) -> Path:
    return make_library(tmp_path)


def test_csv_and_geojson_reports(library, tmp_path):
    summary = run([library])
    with tag_report.write_csv(summary.rows, tmp_path / "report.csv").open(
            encoding="utf-8-sig", newline="") as file:
        table = list(csv.DictReader(file))
    assert list(table[0]) == list(tag_report.COLUMNS)
    assert [row["file"] for row in table] == sorted(str(library / name) for name in EXPECTED)
    eiffel = next(row for row in table if row["file"].endswith("eiffel_1.jpg"))
    assert eiffel == {"file": str(library / "2019/paris/eiffel_1.jpg"), "status": "tagged",
                      "landmark": "Eiffel Tower", "probability": "0.9", "latitude": "48.8584",
                      "longitude": "2.2945", "reason": ""}
    collection = json.loads(tag_report.write_geojson(summary.rows, tmp_path / "r.geojson")
                            .read_text(encoding="utf-8"))
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 11
    by_file = {Path(f["properties"]["file"]).name: f for f in collection["features"]}
    assert by_file["eiffel_1.jpg"]["geometry"] == {"type": "Point",
                                                   "coordinates": [2.2945, 48.8584]}
    assert by_file["köprü İstanbul.jpg"]["properties"]["landmark"] == "Sydney Harbour Bridge"
    assert by_file["fog.jpg"]["geometry"] is None
    assert by_file["broken.jpg"]["properties"]["status"] == "failed"
    assert not list(tmp_path.glob(".*.tmp"))


def test_map_markers(library):
    markers = tag_report.map_markers(run([library]).rows)
    assert [(m.landmark, len(m.files)) for m in markers] == [
        ("Eiffel Tower", 2), ("Golden Gate Bridge", 2), ("Sydney Harbour Bridge", 1)]


#: Debian's copies of the scripts a folium map needs (libjs-leaflet, libjs-jquery), used in
#: place of their CDNs, which this sandbox cannot reach.
LOCAL_SCRIPTS = {"leaflet.js": "/usr/share/javascript/leaflet/leaflet.js",
                 "leaflet.css": "/usr/share/javascript/leaflet/leaflet.css",
                 "jquery": "/usr/share/javascript/jquery/jquery.min.js"}


def offline_page(page: str) -> str:
    """The map's HTML with Leaflet and jQuery from :data:`LOCAL_SCRIPTS` and the other CDN files
    (Bootstrap, icon fonts, which plain markers do not use) left out."""
    lines = []
    for line in page.splitlines():
        if "https://" in line and ("<script src=" in line or "stylesheet" in line):
            local = next((path for name, path in LOCAL_SCRIPTS.items() if name in line), None)
            if local is None:
                continue
            line = (f'<link rel="stylesheet" href="file://{local}"/>' if local.endswith(".css")
                    else f'<script src="file://{local}"></script>')
        lines.append(line)
    return "\n".join(lines)


#: The open popup's first two lines and its thumbnails' widths, once they are all decoded.
POPUP = """
const popup = document.querySelector('.leaflet-popup-content .landmark-popup');
if (!popup) return null;
const images = Array.from(popup.querySelectorAll('img.landmark-thumbnail'));
if (!images.every(image => image.complete && image.naturalWidth > 0)) return null;
return [popup.innerText.split('\\n').slice(0, 2), images.map(image => image.naturalWidth)];
"""


def test_map_in_a_real_browser(library, tmp_path):
    """The map opened by headless Chromium: one marker per landmark, a popup with the count and
    thumbnails (scripts from Debian's packages instead of CDNs: :func:`offline_page`)."""
    from test_web import CHROMIUM_FLAGS, need, need_program, screenshot

    missing = [path for path in LOCAL_SCRIPTS.values() if not Path(path).is_file()]
    if missing:
        message = f"{missing[0]} is missing (Debian: apt-get install -y libjs-leaflet libjs-jquery)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    chromium, chromedriver = need_program("chromium", "chromium-browser"), need_program(
        "chromedriver")
    need("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = tag_report.write_map(run([library]).rows, tmp_path / "map.html").read_text()
    (tmp_path / "offline.html").write_text(offline_page(page), encoding="utf-8")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}",
                 "--allow-file-access-from-files"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        driver.get((tmp_path / "offline.html").as_uri())
        WebDriverWait(driver, 30).until(  # the map's script runs before the load event
            lambda d: d.execute_script("return document.readyState") == "complete")
        markers = driver.find_elements(By.CSS_SELECTOR, ".leaflet-marker-icon")
        assert len(markers) == 3
        popups = []
        for index in range(len(markers)):
            driver.execute_script("document.querySelector('.leaflet-popup-close-button')?.click()")
            WebDriverWait(driver, 10).until(
                lambda d: not d.find_elements(By.CSS_SELECTOR, ".leaflet-popup"))
            driver.execute_script(  # a click on a marker opens its popup
                "document.querySelectorAll('.leaflet-marker-icon')[arguments[0]].click()", index)
            popups.append(WebDriverWait(driver, 10).until(lambda d: d.execute_script(POPUP)))
        screenshot(driver, "tag_map.png")  # with $LANDMARKLIB_SCREENSHOTS (tiles need internet)
        assert sorted(popups) == [[["Eiffel Tower", "2 photos"], [96, 96]],
                                  [["Golden Gate Bridge", "2 photos"], [96, 96]],
                                  [["Sydney Harbour Bridge", "1 photo"], [96]]]
    finally:
        driver.quit()




def test_map_of_nothing_and_thumbnail_limit(tmp_path):
    from PIL import Image

    from landmarklib.tagging import TAGGED, TagRow

    empty = tag_report.write_map([], tmp_path / "empty.html").read_text(encoding="utf-8")
    assert "L.marker(" not in empty and "L.map(" in empty
    rows = []
    for index in range(15):
        path = tmp_path / f"trevi_{index:02d}.jpg"
        Image.new("RGB", (800, 600), (20 * (index % 10), 100, 200)).save(path)
        rows.append(TagRow(str(path), TAGGED, "Trevi Fountain", 0.9, 41.9009, 12.4833))
    rows.append(TagRow(str(tmp_path / "gone.jpg"), TAGGED, "Trevi Fountain", 0.9, 41.9009, 12.4833))
    page = tag_report.write_map(rows, tmp_path / "trevi.html").read_text(encoding="utf-8")
    assert page.count("L.marker(") == 1 and "16 photos" in page
    assert page.count("data:image/jpeg;base64,") == tag_report.THUMBNAILS  # 12 of 16
    assert not list(tmp_path.glob(".*.tmp"))
